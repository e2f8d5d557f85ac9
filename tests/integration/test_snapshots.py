"""Command-side snapshots on a real broker: a takeover from snapshot plus tail is exact.

A history is made by real command processors: a first run snapshots every few events, a
second runs with snapshots off, so the events after the last snapshot form a tail. Every
check compares against a full fold of the events partition.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient
from structlog.testing import capture_logs
from topic_reading import Stored, read_topic

from aggregates.handling import AggregateStates
from aggregates.user.state import UserState
from infra.config.settings import Settings
from schemas.codec import AvroCodec
from streams.command_processor import CommandProcessor, transactions
from streams.kafka.config import admin_config, producer_config, transactional_producer_config
from streams.kafka.topics import Topics, ensure_topics
from streams.partition_takeover import rebuild_states
from streams.snapshots.loading import HEAD_WINDOW
from streams.snapshots.records import HEAD_KEY, Head, decider_version, encode_chunks
from streams.snapshots.writer import Resume, SnapshotPolicy

PARTITIONS = 2
USERS, WORKSPACES = 8, 4
SCOPES = ["users:admin", "workspaces:admin"]
FULL = SnapshotPolicy(every_events=0)  # snapshots off: a fold of every event


def command(name: str, aggregate_id: str, data: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "command_id": f"{name}-{aggregate_id}-{time.monotonic_ns()}",
        "type": name,
        "aggregate_type": "workspace" if "Workspace" in name else "user",
        "aggregate_id": aggregate_id,
        "expected_version": None,
        "issued_at": datetime.now(UTC),
        "correlation_id": "snapshot-test",
        "actor": "test",
        "actor_scopes": SCOPES,
        "data": data,
        **extra,
    }


def first_round() -> list[dict[str, Any]]:
    users = [
        command("RegisterUser", f"u-{n}", {"email": f"u{n}@example.com", "name": f"U{n}"})
        for n in range(USERS)
    ]
    workspaces = [
        command("CreateWorkspace", f"w-{n}", {"name": f"W{n}", "owner_id": f"u-{n}"})
        for n in range(WORKSPACES)
    ]
    members = [
        command("AddWorkspaceMember", f"w-{n}", {"user_id": f"u-{n + 4}", "role": "member"})
        for n in range(WORKSPACES)
    ]
    return users + workspaces + members


def second_round() -> list[dict[str, Any]]:
    channels = [{"channel": "email", "address": "me@example.com", "enabled": True}]
    return [
        *[command("UpdateUserProfile", f"u-{n}", {"name": f"U{n} b"}) for n in range(USERS)],
        *[
            command("SetNotificationPreferences", f"u-{n}", {"channels": channels,
                    "quiet_hours": {"start": "22:00", "end": "07:00", "timezone": "UTC"}})
            for n in range(USERS // 2)
        ],
        *[command("RenameWorkspace", f"w-{n}", {"name": f"W{n} b"}) for n in range(WORKSPACES)],
    ]  # fmt: skip


def tail_round() -> list[dict[str, Any]]:
    return [
        *[command("UpdateUserProfile", f"u-{n}", {"name": f"U{n} c"}) for n in range(USERS)],
        *[
            command("RemoveWorkspaceMember", f"w-{n}", {"user_id": f"u-{n + 4}"})
            for n in range(WORKSPACES)
        ],
        command("DeactivateUser", "u-7", {"reason": "left"}),
    ]


def send(settings: Settings, commands: list[dict[str, Any]]) -> None:
    codec, producer = AvroCodec(), Producer(producer_config(settings))
    for record in commands:
        value = codec.encode(record["type"], record)
        producer.produce(settings.topic("commands"), value, key=record["aggregate_id"])
    assert producer.flush(10) == 0


def outcomes(settings: Settings) -> list[Stored]:
    found: list[Stored] = read_topic(settings, settings.topic("outcomes"))
    return found


@contextmanager
def processing(settings: Settings, every_events: int) -> Iterator[None]:
    """A command processor snapshotting every `every_events` events (0: never), in a thread."""
    processor = CommandProcessor(
        settings.model_copy(update={"snapshot_every_events": every_events})
    )
    stop = threading.Event()
    thread = threading.Thread(target=processor.run, args=(stop,), daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(30)


def decide(settings: Settings, every_events: int, commands: list[dict[str, Any]]) -> list[Stored]:
    """Run `commands` through a processor; their outcomes, in order of the commands."""
    before = len(outcomes(settings))
    with processing(settings, every_events):
        send(settings, commands)
        deadline = time.monotonic() + 60
        while len(found := outcomes(settings)) < before + len(commands):
            assert time.monotonic() < deadline, f"{len(found) - before} of {len(commands)}"
            time.sleep(0.2)
    fence(settings)
    by_id = {o.record["command_id"]: o for o in found}
    return [by_id[c["command_id"]] for c in commands]


def fence(settings: Settings) -> None:
    """What a restarted processor does first: fencing its transactional id also completes
    its last committed transaction (commit markers are written after commit returns)."""
    transactions(settings).open()


def rebuilt(
    settings: Settings, partition: int, policy: SnapshotPolicy
) -> tuple[AggregateStates, Resume]:
    """A takeover as a restarted processor makes it: fence, then rebuild."""
    fence(settings)
    return rebuild_states(settings, Topics.from_settings(settings), partition, AvroCodec(), policy)


def latest_heads(settings: Settings) -> dict[int, tuple[int, Head]]:
    """Per events partition, the offset and content of the last committed snapshot head."""
    heads: dict[int, tuple[int, Head]] = {}
    for stored in read_topic(settings, settings.topic("snapshots")):
        if stored.key == HEAD_KEY:
            heads[stored.partition] = (stored.offset, Head(**stored.record))
    return heads


def aggregate_events_from(settings: Settings, partition: int, offset: int) -> int:
    events = read_topic(settings, settings.topic("events"))
    return sum(1 for e in events if e.partition == partition and e.offset >= offset)


@pytest.fixture(scope="module")
def history(module_settings: Settings) -> Settings:
    """Two rounds snapshotted every 3 events, then a tail round with snapshots off."""
    settings = module_settings.model_copy(update={"partitions": PARTITIONS})
    ensure_topics(settings)
    decide(settings, 3, first_round())
    decide(settings, 3, second_round())
    decide(settings, 0, tail_round())
    return settings


def test_a_takeover_from_snapshot_and_tail_has_exactly_the_states_of_a_full_fold(
    history: Settings,
) -> None:
    heads = latest_heads(history)
    assert sorted(heads) == list(range(PARTITIONS))
    tails = 0
    for partition in range(PARTITIONS):
        with capture_logs() as logs:
            states, resume = rebuilt(history, partition, SnapshotPolicy())
        full, full_resume = rebuilt(history, partition, FULL)
        _, head = heads[partition]
        assert states.states == full.states and len(full.states) > 0
        tail = aggregate_events_from(history, partition, head.covered_offset)
        assert (resume.uncovered, resume.covered_offset) == (tail, full_resume.covered_offset)
        assert resume.generation is not None and resume.generation.id == head.generation
        assert resume.events_topic_id == head.events_topic_id
        [line] = [entry for entry in logs if entry["event"] == "partition_rebuilt"]
        assert (line["source"], line["events_folded"]) == ("snapshot", tail)
        tails += tail
    assert tails >= USERS + WORKSPACES + 1  # the tail round's events, and leftovers before


def test_a_snapshot_of_another_decider_version_is_ignored_and_logged(history: Settings) -> None:
    other = SnapshotPolicy(version="another-decider")
    with capture_logs() as logs:
        states, resume = rebuilt(history, 0, other)
    full, full_resume = rebuilt(history, 0, FULL)
    assert states.states == full.states
    assert (resume.generation, resume.uncovered) == (None, full_resume.uncovered)
    [ignored] = [entry for entry in logs if entry["event"] == "snapshot_ignored"]
    assert (ignored["partition"], ignored["reason"]) == (0, "decider_version")
    assert ignored["detail"] == f"decider_version: {decider_version()}, not another-decider"


def test_an_aborted_snapshot_is_never_read(history: Settings) -> None:
    offset, head = latest_heads(history)[1]
    producer = Producer(transactional_producer_config(history, f"{history.topic_prefix}.stray"))
    producer.init_transactions(30)
    producer.begin_transaction()
    stray = Head(head.decider_version, head.events_topic_id, 1, head.covered_offset,
                 "stray-generation", offset + 5, 0, 0, head.taken_at)  # fmt: skip
    producer.produce(history.topic("snapshots"), stray.encode(AvroCodec()), key=HEAD_KEY,
                     partition=1)  # fmt: skip
    producer.flush(10)
    producer.abort_transaction(30)
    states, resume = rebuilt(history, 1, SnapshotPolicy())
    assert resume.generation is not None and resume.generation.id == head.generation
    assert states.states == rebuilt(history, 1, FULL)[0].states


def test_commands_after_a_takeover_from_a_snapshot_decide_with_the_right_versions(
    history: Settings,
) -> None:
    versions = {
        key: version
        for partition in range(PARTITIONS)
        for key, (_, version) in rebuilt(history, partition, FULL)[0].states.items()
    }
    assert versions[("user", "u-0")] == 4 and versions[("workspace", "w-0")] == 5
    right = [
        command("UpdateUserProfile", f"u-{n}", {"name": "D"},
                expected_version=versions[("user", f"u-{n}")])
        for n in range(USERS - 1)
    ]  # fmt: skip
    stale = command("RenameWorkspace", "w-1", {"name": "X"}, expected_version=2)
    again = command("RegisterUser", "u-2", {"email": "u2@example.com", "name": "U2"})
    gone = command("UpdateUserProfile", "u-7", {"name": "Back"})
    with capture_logs() as logs:
        decided = [o.record for o in decide(history, 3, [*right, stale, again, gone])]
    sources = {e["partition"]: e["source"] for e in logs if e["event"] == "partition_rebuilt"}
    assert sources == {p: "snapshot" for p in range(PARTITIONS)}
    assert [(o["status"], o["version"]) for o in decided[: USERS - 1]] == [
        ("accepted", versions[("user", f"u-{n}")] + 1) for n in range(USERS - 1)
    ]
    assert [(o["error_code"], o["version"]) for o in decided[USERS - 1 :]] == [
        ("version_conflict", versions[("workspace", "w-1")]),
        ("user.already_registered", versions[("user", "u-2")] + 1),  # renamed just before
        ("user.deactivated", versions[("user", "u-7")]),
    ]
    assert decided[USERS - 1]["error_message"] == (
        f"expected version 2, aggregate is at {versions[('workspace', 'w-1')]}"
    )


@pytest.fixture
def small_history(settings: Settings) -> Settings:
    """One partition, snapshotted after every event."""
    one = settings.model_copy(update={"partitions": 1})
    ensure_topics(one)
    decide(one, 1, first_round())
    return one


def test_an_undecodable_head_is_ignored_and_logged(small_history: Settings) -> None:
    producer = Producer(producer_config(small_history))
    producer.produce(small_history.topic("snapshots"), b"garbage", key=HEAD_KEY, partition=0)
    assert producer.flush(10) == 0
    with capture_logs() as logs:
        states, resume = rebuilt(small_history, 0, SnapshotPolicy())
    assert states.states == rebuilt(small_history, 0, FULL)[0].states
    assert resume.generation is None and resume.uncovered == USERS + 3 * WORKSPACES
    [ignored] = [entry for entry in logs if entry["event"] == "snapshot_ignored"]
    assert ignored["reason"] == "not_avro"


def test_without_the_snapshots_topic_a_takeover_folds_every_event_and_decides_right(
    small_history: Settings,
) -> None:
    admin = AdminClient(admin_config(small_history))
    topic = small_history.topic("snapshots")
    [deleted] = admin.delete_topics([topic]).values()
    deleted.result()
    deadline = time.monotonic() + 30
    while topic in admin.list_topics(timeout=10).topics:  # deletion completes asynchronously
        assert time.monotonic() < deadline, f"{topic} still listed"
        time.sleep(0.2)
    with capture_logs() as logs:
        states, resume = rebuilt(small_history, 0, SnapshotPolicy())
    assert states.states == rebuilt(small_history, 0, FULL)[0].states
    assert (resume.generation, resume.events_topic_id) == (None, None)  # and none written
    assert [e["event"] for e in logs if e["event"].startswith("snapshot")] == [
        "snapshots_unavailable"
    ]
    ensure_topics(small_history)  # as every process does when it starts
    decided = decide(small_history, 1, [command("UpdateUserProfile", "u-1", {"name": "Z"},
                                                expected_version=1)])  # fmt: skip
    assert (decided[0].record["status"], decided[0].record["version"]) == ("accepted", 2)
    [(_, head)] = latest_heads(small_history).values()
    assert head.aggregates == USERS + WORKSPACES
    resumed = rebuilt(small_history, 0, SnapshotPolicy())[1]
    assert resumed.generation is not None and resumed.generation.id == head.generation


def test_the_latest_head_is_found_behind_more_records_than_the_first_window(
    small_history: Settings,
) -> None:
    [(_, head)] = latest_heads(small_history).values()
    noise = encode_chunks(AvroCodec(), {"decider_version": head.decider_version,
                          "events_partition": 0, "generation": "noise"}, 900,
                          [("user", f"x-{n}", UserState(), 1) for n in range(HEAD_WINDOW * 2)],
                          chunk_bytes=1, max_entry_bytes=10_000)  # fmt: skip
    producer = Producer(producer_config(small_history))
    for chunk in noise:
        producer.produce(small_history.topic("snapshots"), chunk, key=b"chunk/900", partition=0)
    assert producer.flush(10) == 0
    states, resume = rebuilt(small_history, 0, SnapshotPolicy())
    assert resume.generation is not None and resume.generation.id == head.generation
    assert states.states == rebuilt(small_history, 0, FULL)[0].states
    assert len(noise) == 2 * HEAD_WINDOW  # one entry a chunk, all after the head
