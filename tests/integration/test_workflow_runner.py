"""The workflow runner on real Kafka and PostgreSQL, behind the real processor and projector.

Commands register users and add workspace members; the runner must publish exactly the
configured requests, once, also when it is SIGKILLed with a batch in flight (its read-model
lookups held by a lock the test takes), and a redelivery of the same events must ask for
the same ids.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from deadline import Deadline
from prometheus_client import REGISTRY
from stack import ServiceProcess
from topic_reading import Stored, read_topic

from infra.config.settings import Settings
from infra.local.service_env import with_free_ports
from projections.lookups import LOOKUP_PROJECTIONS, PostgresLookups
from projections.projector import Projector
from schemas.codec import AvroCodec
from streams.command_processor import CommandProcessor
from streams.kafka.config import consumer_config, producer_config
from streams.kafka.topics import ensure_topics
from streams.workflows.service import bootstrap

APP_URL = "https://nexus.test"


class Thread:
    """Something with `run(stop)` running on a daemon thread until closed."""

    def __init__(self, target: Callable[[threading.Event], None]) -> None:
        self.stop = threading.Event()
        self.thread = threading.Thread(target=target, args=(self.stop,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(30)
        assert not self.thread.is_alive()


@pytest.fixture
def stack(settings: Settings) -> Iterator[Settings]:
    """The command processor and the projector, on the test's own topics and database."""
    # The runner starts after the events: a new group must read them from the beginning.
    settings = with_free_ports(settings).model_copy(
        update={"app_url": APP_URL, "workflows_start_from": "earliest"}
    )
    ensure_topics(settings)
    processor = Thread(CommandProcessor(settings).run)
    with Projector(settings):
        yield settings
    processor.close()


def send_commands(settings: Settings, commands: list[tuple[str, str, dict[str, Any]]]) -> None:
    codec, producer = AvroCodec(), Producer(producer_config(settings))
    for type_, aggregate_id, data in commands:
        record = {
            "command_id": str(uuid.uuid4()),
            "type": type_,
            "aggregate_type": "workspace" if "Workspace" in type_ else "user",
            "aggregate_id": aggregate_id,
            "expected_version": None,
            "issued_at": datetime.now(UTC),
            "correlation_id": str(uuid.uuid4()),
            "actor": "test",
            "actor_scopes": ["users:admin", "workspaces:admin"],
            "data": data,
        }
        producer.produce(settings.topic("commands"), codec.encode(type_, record), key=aggregate_id)
    assert producer.flush(10) == 0


def wait_until(check: Callable[[], Any], what: str, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def committed(settings: Settings, group: str, partitions: Iterable[int]) -> dict[int, int]:
    """`group`'s committed offset on each of the events topic's `partitions` (-1001: none)."""
    consumer = Consumer(consumer_config(settings, group))
    try:
        asked = [TopicPartition(settings.topic("events"), p) for p in sorted(set(partitions))]
        return {tp.partition: tp.offset for tp in consumer.committed(asked, timeout=10)}
    finally:
        consumer.close()


def committed_past(settings: Settings, group: str, events: list[Stored]) -> bool:
    """Whether `group` has committed every one of `events`."""
    offsets = committed(settings, group, (stored.partition for stored in events))
    return all(offsets[stored.partition] > stored.offset for stored in events)


def wait_committed(settings: Settings, group: str, timeout: float = 60) -> list[Stored]:
    """Waits until `group` committed every event now in the topic; returns those events."""
    events = read_topic(settings, settings.topic("events"))
    wait_until(lambda: committed_past(settings, group, events), f"{group} to commit", timeout)
    return events


def requests(settings: Settings) -> list[dict[str, Any]]:
    return [s.record for s in read_topic(settings, settings.topic("notification-requests"))]


def counter(name: str, workflow: str) -> float:
    return (
        REGISTRY.get_sample_value(
            f"nexus_workflow_notifications_{name}_total", {"workflow": workflow}
        )
        or 0.0
    )


@contextmanager
def users_locked(settings: Settings) -> Iterator[int]:
    """The users read model locked against reads (a lookup waits), until the block ends;
    yields the pid of the backend holding the lock."""
    with psycopg.connect(settings.resolved_database_url) as conn, conn.transaction():
        conn.execute("LOCK TABLE public.users IN ACCESS EXCLUSIVE MODE")  # and its table
        yield conn.info.backend_pid


def lookup_waiting_for(settings: Settings, holder: int) -> bool:
    """Whether a lookup of the users view (the runner's) waits for `holder`'s lock."""
    with psycopg.connect(settings.resolved_database_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE %s = ANY(pg_blocking_pids(pid))"
            " AND query LIKE %s",
            (holder, 'SELECT % FROM "public"."users" WHERE %'),
        ).fetchone()
    return row is not None and row[0] == 1


USERS = {
    "u-ada": ("Ada", "ada@example.com"),
    "u-grace": ("Grace", "grace@example.com"),
    "u-lin": ("Lin", "lin@example.com"),
    "u-bob": ("Bob", "bob@example.com"),
    "u-eve": ("Eve", "eve@example.com"),
}
WORKSPACES = {"w-1": ("Engines", "u-ada"), "w-2": ("Looms", "u-grace")}
ADDED_BEFORE = [("w-1", "u-grace", "admin"), ("w-1", "u-ghost", "member")]  # u-ghost: no user
ADDED_DURING = [(w, user, "member") for w in WORKSPACES for user in ("u-lin", "u-bob", "u-eve")]


def adding(members: list[tuple[str, str, str]]) -> list[tuple[str, str, dict[str, Any]]]:
    return [("AddWorkspaceMember", w, {"user_id": u, "role": role}) for w, u, role in members]


# Committed before the kill: every user, both workspaces (with their owners), two members.
BEFORE = [
    *[("RegisterUser", u, {"email": email, "name": name}) for u, (name, email) in USERS.items()],
    *[("CreateWorkspace", w, {"name": name, "owner_id": o}) for w, (name, o) in WORKSPACES.items()],
    *adding(ADDED_BEFORE),
]
# In flight at the kill: members added while the runner's lookups wait.
DURING = adding(ADDED_DURING)
BUDGET_S = 300  # every wait of the test together (deadline.py)


@pytest.mark.fault
@pytest.mark.timeout(BUDGET_S + 90)  # and the module's stack when run alone
def test_events_become_the_configured_requests_once(stack: Settings) -> None:
    settings, deadline = stack, Deadline(BUDGET_S)
    group = f"{settings.topic_prefix}.workflows"
    skipped_before = counter("skipped", "member-added")  # counted in this process: the replay
    send_commands(settings, BEFORE)
    process = ServiceProcess("workflows", settings)  # `nexus run workflows`
    try:
        process.start(deadline.left(60, "the runner to start"))
        done = wait_committed(settings, group, deadline.left(60, "the first events committed"))
        first = requests(settings)
        with users_locked(settings) as holder:
            send_commands(settings, DURING)
            wait_until(
                lambda: lookup_waiting_for(settings, holder),
                "the runner's lookup to wait for the lock",
                deadline.left(60, "the runner to look up"),
            )
            # In flight: events the runner took (it waits on the lookup of one), none of
            # them committed, none of their requests published.
            arrived = read_topic(settings, settings.topic("events"))
            held = [stored for stored in arrived if stored not in done]
            offsets = committed(settings, group, (stored.partition for stored in held))
            assert held, "the runner waits, but for none of the new events"
            ahead = [(s.partition, s.offset) for s in held if offsets[s.partition] > s.offset]
            assert not ahead, f"committed while in flight (partition, offset): {ahead}"
            assert len(requests(settings)) == len(first), "requested before its lookups"
            process.kill()  # SIGKILLed mid-batch; the lock goes once it is dead
        process.start(deadline.left(60, "the runner to start again"))
        wait_committed(settings, group, deadline.left(60, "the rest committed"))
    finally:
        process.stop()

    found = requests(settings)
    assert sorted(map(asked, found), key=repr) == sorted(expected(), key=repr)
    assert len(ids(found)) == len(found)
    events = {
        s.record["event_id"]: s.record for s in read_topic(settings, settings.topic("events"))
    }
    for request in found:
        check_request(request, events)

    replay = f"{settings.topic_prefix}.workflows-replay"  # every event delivered again
    running = Thread(bootstrap(settings, group=replay).run)
    try:
        wait_committed(settings, replay, deadline.left(60, "the replay committed"))
    finally:
        running.close()
    again = requests(settings)
    assert len(again) == 2 * len(found) and ids(again) == ids(found)
    assert counter("skipped", "member-added") == skipped_before + 1  # u-ghost is no user


def asked(request: dict[str, Any]) -> tuple[str, str, Any]:
    data = request["data"]
    return data["user_id"], data["template"], json.loads(data["data"])


def expected() -> list[tuple[str, str, Any]]:
    """Every request the configured workflows make of BEFORE and DURING, written out."""
    welcomes = [(user, "welcome", welcome_data(*USERS[user])) for user in USERS]
    added = [(w, u, role) for w, u, role in ADDED_BEFORE + ADDED_DURING if u in USERS]
    return welcomes + [request for member in added for request in member_added(*member)]


def member_added(workspace: str, member: str, role: str) -> list[tuple[str, str, Any]]:
    """The member's request and the workspace owner's."""
    name, owner = WORKSPACES[workspace]
    data = {
        "member": {"name": USERS[member][0], "email": USERS[member][1]},
        "owner": {"name": USERS[owner][0]},
        "workspace": {"id": workspace, "name": name, "url": f"{APP_URL}/w/{workspace}"},
        "role": role,
    }
    return [(member, "workspace_member_added", data), (owner, "workspace_member_added_owner", data)]


def welcome_data(name: str, email: str) -> dict[str, Any]:
    return {
        "user": {"name": name, "email": email, "locale": None},
        "app": {"name": "Nexus", "url": APP_URL},
    }


def ids(found: list[dict[str, Any]]) -> set[tuple[str, str]]:
    return {(r["data"]["notification_id"], r["data"]["idempotency_key"]) for r in found}


def check_request(request: dict[str, Any], events: dict[str, dict[str, Any]]) -> None:
    """The envelope and the deterministic fields point back at the triggering event."""
    data = request["data"]
    cause = events[request["causation_id"]]
    workflow = data["requested_by"].removeprefix("workflow:")
    assert request["type"] == "notification.submitted"
    assert request["aggregate_id"] == data["notification_id"]
    assert request["correlation_id"] == cause["correlation_id"]
    assert data["idempotency_key"] == f"{cause['event_id']}/{workflow}/{data['user_id']}"
    assert data["submitted_at"] == int(cause["occurred_at"].timestamp() * 1000)
    assert data["channels"] is None


class LaggingReadModels(PostgresLookups):
    """The real read models, said to be behind for the first `behind` questions."""

    def __init__(self, database_url: str, behind: int) -> None:
        super().__init__(database_url)
        self.behind, self.asked = behind, 0

    def applied(self, topic: str, offsets: Mapping[int, int], projections: tuple[str, ...]) -> bool:
        self.asked += 1
        return self.asked > self.behind and super().applied(topic, offsets, projections)


def test_a_batch_the_read_models_lag_behind_is_retried_not_lost(stack: Settings) -> None:
    settings = stack
    read_models = LaggingReadModels(settings.resolved_database_url, behind=12)
    worker = bootstrap(settings, read_models=read_models, catch_up_timeout_s=0.2)
    send_commands(settings, [("RegisterUser", "u-1", {"email": "a@example.com", "name": "A"})])
    wait_until(lambda: read_topic(settings, settings.topic("events")), "the event")

    running = Thread(worker.run)  # the Faust app, in this process
    try:
        wait_committed(settings, f"{settings.topic_prefix}.workflows")
    finally:
        running.close()

    assert read_models.asked > read_models.behind  # timed out at least twice, then caught up
    [request] = requests(settings)
    assert (request["data"]["user_id"], request["data"]["template"]) == ("u-1", "welcome")


def test_postgres_lookups_read_the_public_views_and_checkpoints(settings: Settings) -> None:
    ensure_topics(settings)
    lookups = PostgresLookups(settings.resolved_database_url)
    topic = settings.topic("events")
    try:
        assert not lookups.applied(topic, {0: 0}, LOOKUP_PROJECTIONS)  # not even migrated
        processor = Thread(CommandProcessor(settings).run)
        send_commands(
            settings,
            [
                ("RegisterUser", "u-1", {"email": "a@example.com", "name": "A", "locale": "fr"}),
                ("CreateWorkspace", "w-1", {"name": "W", "owner_id": "u-1"}),
            ],
        )
        with Projector(settings):
            events = wait_until(
                lambda: (found := read_topic(settings, topic)) and len(found) == 3 and found,
                "3 events",
            )
            last = {s.partition: s.offset for s in events}
            wait_until(lambda: lookups.applied(topic, last, LOOKUP_PROJECTIONS), "catching up")
            assert not lookups.applied(topic, {p: o + 1 for p, o in last.items()}, ("users",))
            assert lookups.applied(topic, {}, LOOKUP_PROJECTIONS)
            assert lookups.user("u-1") == {
                "user_id": "u-1", "email": "a@example.com", "name": "A", "locale": "fr",
                "status": "active",
            }  # fmt: skip
            assert lookups.workspace("w-1") == {
                "workspace_id": "w-1", "name": "W", "owner_id": "u-1", "status": "active",
            }  # fmt: skip
            assert lookups.user("nobody") is None and lookups.workspace("nowhere") is None
        processor.close()
    finally:
        lookups.close()


def test_a_stop_in_the_middle_of_a_batch_commits_none_of_it(stack: Settings) -> None:
    settings = stack
    read_models = LaggingReadModels(settings.resolved_database_url, behind=10**9)
    worker = bootstrap(settings, read_models=read_models)
    send_commands(settings, [("RegisterUser", "u-1", {"email": "a@example.com", "name": "A"})])
    events = wait_until(lambda: read_topic(settings, settings.topic("events")), "the event")

    running = Thread(worker.run)
    try:
        wait_until(lambda: read_models.asked, "the batch to wait for the read models")
    finally:
        running.close()  # Faust acks a cancelled take_events batch: the agent must hold it

    assert not committed_past(settings, f"{settings.topic_prefix}.workflows", events)
    assert requests(settings) == []
