"""Snapshot records and the writer's bookkeeping, without Kafka (a recording producer)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import pytest

from aggregates.handling import AggregateStates
from aggregates.state_codec import state_to_json
from aggregates.user.state import UserState
from schemas.codec import AvroCodec
from streams.snapshots.records import (
    ENTRY_OVERHEAD,
    HEAD_KEY,
    Generation,
    Head,
    SnapshotInvalid,
    SnapshotTooLarge,
    apply_chunks,
    decider_version,
    encode_chunks,
)
from streams.snapshots.writer import Resume, SnapshotPolicy, SnapshotWriter

CODEC = AvroCodec()
AT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
HEADER = {"decider_version": "v1", "events_partition": 3, "generation": "g1"}


def user(n: int) -> UserState:
    return UserState(registered=True, email=f"u{n}@example.com", name=f"User {n}")


def entries(count: int, start: int = 0) -> list[tuple[str, str, Any, int]]:
    return [("user", f"u-{n}", user(n), n + 1) for n in range(start, start + count)]


def head(chunks: int, aggregates: int, **changes: Any) -> Head:
    base = Head("v1", "topic-id", 3, 100, "g1", 0, chunks, aggregates, AT)
    return replace(base, **changes)


def test_the_decider_version_is_a_stable_fingerprint() -> None:
    assert decider_version() == decider_version()
    assert len(decider_version()) == 32 and int(decider_version(), 16) >= 0


def test_chunks_are_cut_at_chunk_bytes_and_numbered_on() -> None:
    entry_bytes = len(state_to_json("user", user(0))) + len("u-0") + ENTRY_OVERHEAD
    empty = CODEC.encode("aggregate.snapshot_chunk", {**HEADER, "sequence": 5, "entries": []})
    chunks = encode_chunks(CODEC, HEADER, 5, entries(10), 3 * entry_bytes, 1000)
    records = [CODEC.decode(c)[1] for c in chunks]
    assert [r["sequence"] for r in records] == [5, 6, 7, 8]
    assert [len(r["entries"]) for r in records] == [3, 3, 3, 1]
    assert [e["aggregate_id"] for r in records for e in r["entries"]] == [
        f"u-{n}" for n in range(10)
    ]
    assert all(len(c) <= len(empty) + 3 * entry_bytes for c in chunks)


def test_a_state_too_large_for_a_record_is_refused() -> None:
    with pytest.raises(SnapshotTooLarge, match="user u-0: "):
        encode_chunks(CODEC, HEADER, 0, entries(1), chunk_bytes=400, max_entry_bytes=50)


def test_a_head_round_trips_and_a_chunk_is_no_head() -> None:
    assert Head.decode(CODEC, head(2, 5).encode(CODEC)) == head(2, 5)
    [chunk] = encode_chunks(CODEC, HEADER, 0, entries(1), 400, 1000)
    with pytest.raises(SnapshotInvalid) as raised:
        Head.decode(CODEC, chunk)
    assert raised.value.reason == "not_a_head"


def test_later_chunks_replace_earlier_entries_and_other_generations_are_skipped() -> None:
    base = encode_chunks(CODEC, HEADER, 0, entries(4), 10_000, 10_000)
    newer = [("user", "u-1", user(99), 7)]
    delta = encode_chunks(CODEC, HEADER, 1, newer, 10_000, 10_000)
    other = encode_chunks(CODEC, {**HEADER, "generation": "g0"}, 0, entries(2, 50), 10_000, 10_000)
    states, count = apply_chunks(CODEC, head(2, 4), [*other, *base, *delta])
    assert count == 5
    assert states.states == {
        ("user", "u-0"): (user(0), 1),
        ("user", "u-1"): (user(99), 7),
        ("user", "u-2"): (user(2), 3),
        ("user", "u-3"): (user(3), 4),
    }


@pytest.mark.parametrize(
    ("the_head", "reason"),
    [
        (head(3, 4), "chunk_missing"),
        (head(2, 5), "aggregates"),
        (head(2, 4, decider_version="v2"), "chunk_version"),
    ],
)
def test_chunks_that_do_not_add_up_are_refused(the_head: Head, reason: str) -> None:
    chunks = [
        *encode_chunks(CODEC, HEADER, 0, entries(4), 10_000, 10_000),
        *encode_chunks(CODEC, HEADER, 1, entries(1), 10_000, 10_000),
    ]
    with pytest.raises(SnapshotInvalid) as raised:
        apply_chunks(CODEC, the_head, chunks)
    assert raised.value.reason == reason


def test_a_chunk_seen_twice_is_refused() -> None:
    chunk = encode_chunks(CODEC, HEADER, 0, entries(1), 10_000, 10_000)
    with pytest.raises(SnapshotInvalid) as raised:
        apply_chunks(CODEC, head(1, 1), [*chunk, *chunk])
    assert raised.value.reason == "chunk_repeated"


@dataclass
class Sent:
    """A produced message, read as confluent_kafka's Message is."""

    topic: str
    key_bytes: bytes
    value_bytes: bytes
    partition: int
    at: int

    def key(self) -> bytes:
        return self.key_bytes

    def offset(self) -> int:
        return self.at

    def record(self) -> dict[str, Any]:
        return CODEC.decode(self.value_bytes)[1]


@dataclass
class RecordingProducer:
    """Stands in for a transactional producer: assigns offsets and calls back on flush."""

    sent: list[Sent] = field(default_factory=list)
    waiting: list[tuple[Sent, Callable[[None, Sent], None] | None]] = field(default_factory=list)

    def produce(self, topic: str, value: bytes, key: bytes, partition: int,
                on_delivery: Callable[[None, Sent], None] | None = None) -> None:  # fmt: skip
        message = Sent(topic, key, value, partition, len(self.sent) + 1000)
        self.sent.append(message)
        self.waiting.append((message, on_delivery))

    def flush(self, _timeout: float) -> int:
        for message, callback in self.waiting:
            if callback is not None:
                callback(None, message)
        self.waiting.clear()
        return 0


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def writer(clock: Clock, resume: Resume | None = None, **policy: Any) -> SnapshotWriter:
    the_policy = SnapshotPolicy(**{"every_events": 10, "every_s": 60.0, "version": "v1", **policy})
    start = resume or Resume(500, 0, frozenset(), None, "topic-id")
    return SnapshotWriter(the_policy, CODEC, "snaps", 3, start, lambda: AT, clock)


def states_of(count: int) -> AggregateStates:
    states = AggregateStates()
    for aggregate_type, aggregate_id, state, version in entries(count):
        states.set(aggregate_type, aggregate_id, state, version)
    return states


def batch(committed: AggregateStates, *ids: int) -> AggregateStates:
    staged = committed.overlay()
    for n in ids:
        staged.set("user", f"u-{n}", user(n + 1000), 50)
    return staged


def test_a_snapshot_is_due_after_every_events_or_every_s_if_anything_changed() -> None:
    clock = Clock()
    snapshots = writer(clock)
    assert (snapshots.due(0), snapshots.due(9), snapshots.due(10)) == (False, False, True)
    snapshots.committed({("user", "u-1")}, 4, 600)
    assert (snapshots.due(5), snapshots.due(6)) == (False, True)
    clock.now += 60
    assert (snapshots.due(0), snapshots.uncovered, snapshots.covered) == (True, 4, 601)


def test_no_snapshot_is_due_without_an_events_topic_id_or_when_off() -> None:
    clock = Clock()
    unknown = writer(clock, Resume(0, 50, frozenset(), None, None))
    assert unknown.due(100) is False
    assert writer(clock, every_events=0).due(100) is False


def test_the_first_snapshot_is_a_base_then_deltas_hold_what_changed() -> None:
    clock, producer = Clock(), RecordingProducer()
    snapshots, committed = writer(clock), states_of(5)
    staged = batch(committed, 1)
    snapshots.write(producer, committed, staged, 700)
    committed.merge(staged)
    snapshots.committed(staged.states.keys(), 1, 700)
    [chunk, first_head] = producer.sent
    assert (chunk.key(), chunk.partition, first_head.key()) == (b"chunk/0", 3, HEAD_KEY)
    assert [e["aggregate_id"] for e in chunk.record()["entries"]] == [f"u-{n}" for n in range(5)]
    assert first_head.record() == {
        "decider_version": "v1", "events_topic_id": "topic-id", "events_partition": 3,
        "covered_offset": 701, "generation": chunk.record()["generation"],
        "base_offset": chunk.offset(), "chunks": 1, "aggregates": 5, "taken_at": AT,
    }  # fmt: skip
    staged = batch(committed, 2, 7)
    snapshots.write(producer, committed, staged, None)
    [delta, second_head] = producer.sent[2:]
    assert delta.key() == b"chunk/1"
    assert [(e["aggregate_id"], e["version"]) for e in delta.record()["entries"]] == [
        ("u-2", 50), ("u-7", 50),
    ]  # fmt: skip
    assert second_head.record() == {
        **first_head.record(), "chunks": 2, "aggregates": 6, "covered_offset": 701,
    }  # fmt: skip


def test_a_generation_is_rebased_once_it_holds_twice_the_aggregates() -> None:
    clock, producer = Clock(), RecordingProducer()
    generation = Generation("g-old", 40, 3, 9)
    snapshots, committed = (
        writer(clock, Resume(500, 20, frozenset(), generation, "topic-id")),
        states_of(5),
    )
    snapshots.write(producer, committed, batch(committed, 1), 900)
    assert [m.key() for m in producer.sent] == [b"chunk/3", HEAD_KEY]  # 9 + 1 entries <= 2 * 5
    snapshots.aborted()
    clock.now += 3600
    producer.sent.clear()
    snapshots.write(producer, committed, batch(committed, 1, 2), 900)
    [base, new_head] = producer.sent
    assert (base.key(), len(base.record()["entries"])) == (b"chunk/0", 5)
    assert new_head.record()["generation"] != "g-old"
    assert new_head.record()["base_offset"] == base.offset()


def test_a_failed_transaction_pauses_snapshots_doubling_each_time() -> None:
    clock, producer = Clock(), RecordingProducer()
    snapshots, committed = writer(clock), states_of(2)
    for pause in (60, 120, 240):
        snapshots.write(producer, committed, batch(committed, 1), 10)
        snapshots.aborted()
        clock.now += pause - 1
        assert snapshots.due(50) is False
        clock.now += 1
        assert snapshots.due(50) is True
    snapshots.committed({("user", "u-1")}, 1, 10)
    assert snapshots.generation is None and snapshots.uncovered == 1


def test_a_state_that_cannot_be_encoded_skips_the_snapshot_not_the_batch() -> None:
    clock, producer = Clock(), RecordingProducer()
    snapshots, committed = writer(clock, max_entry_bytes=10), states_of(2)
    snapshots.write(producer, committed, batch(committed, 1), 10)
    assert producer.sent == []
    assert snapshots.due(50) is False
    snapshots.committed({("user", "u-1")}, 1, 10)
    assert (snapshots.uncovered, snapshots.dirty) == (1, {("user", "u-1")})
