"""The workflow runner on real Kafka and PostgreSQL, behind the real processor and projector.

Commands register users and add workspace members; the runner must publish exactly the
configured requests, once, and a redelivery of the same events must ask for the same ids.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
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
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def committed_past(settings: Settings, group: str, events: list[Stored]) -> bool:
    """Whether `group` has committed every one of `events`."""
    wanted: dict[int, int] = {}
    for stored in events:
        wanted[stored.partition] = max(wanted.get(stored.partition, 0), stored.offset + 1)
    consumer = Consumer(consumer_config(settings, group))
    try:
        topic = settings.topic("events")
        asked = [TopicPartition(topic, p) for p in sorted(wanted)]
        committed = {tp.partition: tp.offset for tp in consumer.committed(asked, timeout=10)}
    finally:
        consumer.close()
    return all(committed[p] >= offset for p, offset in wanted.items())


def wait_committed(settings: Settings, group: str) -> None:
    events = read_topic(settings, settings.topic("events"))
    wait_until(lambda: committed_past(settings, group, events), f"{group} to commit")


def requests(settings: Settings) -> list[dict[str, Any]]:
    return [s.record for s in read_topic(settings, settings.topic("notification-requests"))]


def counter(name: str, workflow: str) -> float:
    return (
        REGISTRY.get_sample_value(
            f"nexus_workflow_notifications_{name}_total", {"workflow": workflow}
        )
        or 0.0
    )


# Its waits: 60 s each, two starts of 60 s, and the module's stack when run alone.
@pytest.mark.fault
@pytest.mark.timeout(420)
def test_events_become_the_configured_requests_once(stack: Settings) -> None:
    settings = stack
    group = f"{settings.topic_prefix}.workflows"
    skipped_before = counter("skipped", "member-added")  # counted in this process: the replay
    send_commands(
        settings,
        [
            ("RegisterUser", "u-ada", {"email": "ada@example.com", "name": "Ada"}),
            ("RegisterUser", "u-grace", {"email": "grace@example.com", "name": "Grace"}),
            ("CreateWorkspace", "w-1", {"name": "Engines", "owner_id": "u-ada"}),
            ("AddWorkspaceMember", "w-1", {"user_id": "u-grace", "role": "admin"}),
            ("AddWorkspaceMember", "w-1", {"user_id": "u-ghost", "role": "member"}),
        ],
    )
    wait_until(lambda: len(read_topic(settings, settings.topic("events"))) == 6, "6 events")

    process = ServiceProcess("workflows", settings).start()  # `nexus run workflows`
    try:
        wait_committed(settings, group)
        first = requests(settings)
        process.kill()
        process.start()  # SIGKILLed and restarted: redelivers at most what it did not commit
        wait_committed(settings, group)
    finally:
        process.stop()
    assert len(requests(settings)) == len(first), "a restart asked again for committed events"

    member_data = {
        "member": {"name": "Grace", "email": "grace@example.com"},
        "owner": {"name": "Ada"},
        "workspace": {"id": "w-1", "name": "Engines", "url": f"{APP_URL}/w/w-1"},
        "role": "admin",
    }
    assert sorted(
        (r["data"]["user_id"], r["data"]["template"], json.loads(r["data"]["data"])) for r in first
    ) == sorted(
        [
            ("u-ada", "welcome", welcome_data("Ada", "ada@example.com")),
            ("u-grace", "welcome", welcome_data("Grace", "grace@example.com")),
            ("u-grace", "workspace_member_added", member_data),
            ("u-ada", "workspace_member_added_owner", member_data),
        ],
        key=repr,
    )
    events = {
        s.record["event_id"]: s.record for s in read_topic(settings, settings.topic("events"))
    }
    for request in first:
        check_request(request, events)

    replay = f"{settings.topic_prefix}.workflows-replay"  # every event delivered again
    running = Thread(bootstrap(settings, group=replay).run)
    try:
        wait_committed(settings, replay)
    finally:
        running.close()
    again = requests(settings)
    assert len(again) == 2 * len(first)
    assert ids(again) == ids(first) and len(ids(first)) == len(first)
    assert counter("skipped", "member-added") == skipped_before + 1  # u-ghost is no user


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
