"""Taking over a commands partition whose events partition holds 1,000,000 events, with and
without a snapshot, side by side in one run.

The events go straight to a one-partition events topic, pre-encoded, by a plain producer
(not timed): 100,000 aggregates (4 users to 1 workspace), ten events each, in rounds so
that histories interleave as they do in production. Then, as the command processor does:
a first takeover, with no snapshot to read, folds every event (the "without" figure); one
command through that writer makes it write its base snapshot; `every_events` more events
are written (the default snapshot interval: the longest tail a takeover meets); and a new
writer takes over from snapshot + tail (the "with" figure). Its states must equal the
first writer's plus the tail. Timed: `PartitionWriter.open()` (fencing is once per process,
not per partition, so not in it); the "with" history is the longer one.
NEXUS_BENCH_TAKEOVER_EVENTS sets a smaller history.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from aggregates.handling import AggregateStates
from bench.environment import BenchEnvironment
from bench.kafka_log import bulk_producer, produce_all
from bench.report import Figure, Outcome, say
from infra.config.settings import Settings
from schemas.codec import AvroCodec
from streams.command_step import process_step
from streams.kafka.config import consumer_config
from streams.kafka.topics import Topics, ensure_topics
from streams.kafka.transactions import TransactionalProducer
from streams.partition_writer import PartitionWriter
from streams.snapshots.loading import latest_head
from streams.snapshots.writer import SnapshotPolicy

NAME = "takeover"
EVENTS = int(os.environ.get("NEXUS_BENCH_TAKEOVER_EVENTS", "1000000"))
EVENTS_PER_AGGREGATE = 10
TARGET_MS = 5000.0
T0 = datetime(2025, 1, 1, tzinfo=UTC)


def history(codec: AvroCodec, aggregates: int, versions: range) -> Iterator[tuple[str, bytes]]:
    """(key, Avro event): round v gives each of the first `aggregates` its version v."""
    for version in versions:
        for n in range(aggregates):
            kind, aggregate, data = (_user if n % 5 else _workspace)(n, version)
            record = _record(kind, aggregate, version, data)
            yield aggregate, codec.encode(kind, record, check=False)


def _user(n: int, version: int) -> tuple[str, str, dict[str, Any]]:
    if version == 1:
        return "user.registered", f"u-{n}", {"email": f"u{n}@example.com", "name": f"User {n}",
                                             "locale": "en"}  # fmt: skip
    if version % 2:
        channels = [{"channel": "email", "address": f"u{n}@example.com", "enabled": True}]
        return "user.preferences_set", f"u-{n}", {"channels": channels, "quiet_hours": None}
    return "user.profile_updated", f"u-{n}", {"name": f"User {n} v{version}", "email": None}


def _workspace(n: int, version: int) -> tuple[str, str, dict[str, Any]]:
    if version == 1:
        return "workspace.created", f"w-{n}", {"name": f"Space {n}", "owner_id": f"u-{n + 1}"}
    if version == 2:
        return "workspace.member_added", f"w-{n}", {"user_id": f"u-{n + 1}", "role": "owner"}
    member = f"u-{n + (version - 1) // 2 + 1}"  # added at an odd version, removed at the next
    if version % 2:
        return "workspace.member_added", f"w-{n}", {"user_id": member, "role": "member"}
    return "workspace.member_removed", f"w-{n}", {"user_id": member}


def _record(kind: str, aggregate: str, version: int, data: dict[str, Any]) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()), "type": kind,
        "aggregate_type": "user" if kind.startswith("user.") else "workspace",
        "aggregate_id": aggregate, "aggregate_version": version,
        "occurred_at": T0 + timedelta(seconds=version), "correlation_id": aggregate,
        "causation_id": None, "actor": "bench", "data": data,
    }  # fmt: skip


def timed_open(settings: Settings, policy: SnapshotPolicy) -> tuple[PartitionWriter, float]:
    writer = PartitionWriter(settings, Topics.from_settings(settings), 0, AvroCodec(),
                             lambda: datetime.now(UTC), policy)  # fmt: skip
    started = time.perf_counter()
    writer.open()
    return writer, time.perf_counter() - started


def snapshot_through_a_command(settings: Settings, writer: PartitionWriter) -> float:
    """One RegisterUser decided by `writer` as the processor would: its batch is due for
    the partition's first snapshot. Returns that batch's seconds."""
    codec, topic = AvroCodec(), settings.topic("commands")
    command = {
        "command_id": "bench-snapshot", "type": "RegisterUser", "aggregate_type": "user",
        "aggregate_id": "u-bench", "expected_version": None, "issued_at": T0,
        "correlation_id": "bench", "actor": "bench", "actor_scopes": ["users:admin"],
        "data": {"email": "bench@example.com", "name": "Bench", "locale": None},
    }  # fmt: skip
    producer = bulk_producer(settings)
    producer.produce(topic, codec.encode("RegisterUser", command), key="u-bench")
    producer.flush(30)
    group = f"{settings.topic_prefix}.command-processor"
    consumer = Consumer(consumer_config(settings, group))
    try:
        consumer.assign([TopicPartition(topic, 0, 0)])
        message = None
        while message is None or message.error() is not None:
            message = consumer.poll(5)
        transaction = TransactionalProducer(settings, f"{group}.bench")
        transaction.open()
        started = time.perf_counter()
        process_step(transaction, consumer, [(writer, writer.begin([message]))])
        return time.perf_counter() - started
    finally:
        consumer.close()


def snapshot_offsets(settings: Settings) -> tuple[int, int]:
    """(offset of the latest head, records on the snapshots partition). Commit markers are
    written after commit_transaction returns, so the head may take a moment to be readable."""
    consumer = Consumer(consumer_config(settings, f"{settings.topic_prefix}.bench-snapshots"))
    topic, deadline = settings.topic("snapshots"), time.monotonic() + 30
    try:
        while (head := latest_head(consumer, topic, 0)) is None:
            if time.monotonic() > deadline:
                raise RuntimeError("the writer wrote no snapshot")
            time.sleep(0.1)
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), 10)
        return head.offset(), high - low
    finally:
        consumer.close()


def run(env: BenchEnvironment) -> Outcome:
    settings = env.settings(NAME).model_copy(update={"partitions": 1})
    ensure_topics(settings)
    policy, codec = SnapshotPolicy.from_settings(settings), AvroCodec()
    aggregates = EVENTS // EVENTS_PER_AGGREGATE
    tail_events = list(history(codec, min(policy.every_events, aggregates), range(11, 12)))
    say(f"takeover: writing {EVENTS:,} events of {aggregates:,} aggregates")
    started = time.perf_counter()
    events = history(codec, aggregates, range(1, EVENTS_PER_AGGREGATE + 1))
    produce_all(bulk_producer(settings), settings.topic("events"), events)
    load_s = time.perf_counter() - started
    say("takeover: without a snapshot (every event), then one command writes the snapshot")
    first, without_s = timed_open(settings, policy)
    batch_s = snapshot_through_a_command(settings, first)
    head_offset, snapshot_records = snapshot_offsets(settings)
    produce_all(bulk_producer(settings), settings.topic("events"), tail_events)
    say(f"takeover: with the snapshot and {len(tail_events):,} events after it")
    second, with_s = timed_open(settings, policy)
    _check_same(second.states, first.states, [codec.decode(v)[1] for _, v in tail_events])
    with_ms, without_ms = with_s * 1000, without_s * 1000
    figure = Figure(
        f"takeover of {EVENTS:,} events, with snapshot", "ms", with_ms, without_ms,
        "every event folded", f"< {TARGET_MS:,.0f} ms", with_ms < TARGET_MS,
    )  # fmt: skip
    notes = [
        f"{aggregates + 1:,} aggregates; with a snapshot: {with_s:.2f} s (snapshot + "
        f"{len(tail_events):,} events); without: {without_s:.2f} s ({EVENTS:,} events); "
        f"{without_s / with_s:.0f}x faster",
        f"base snapshot written in the batch of one command: {batch_s:.2f} s "
        f"({snapshot_records} records); loading the events took {load_s:.1f} s, not timed",
    ]
    details = {
        "events_without": EVENTS, "events_with": EVENTS + 1 + len(tail_events),
        "aggregates": aggregates + 1, "tail_events": len(tail_events),
        "with_snapshot_s": with_s, "without_snapshot_s": without_s, "snapshot_batch_s": batch_s,
        "snapshot_records": snapshot_records, "snapshot_head_offset": head_offset,
        "load_s": load_s, "every_events": policy.every_events,
    }  # fmt: skip
    return Outcome(NAME, [figure], notes, details)


def _check_same(
    taken_over: AggregateStates, before: AggregateStates, tail: list[dict[str, Any]]
) -> None:
    """`taken_over` must be `before` (every event and the command) with `tail` folded on."""
    expected = AggregateStates(dict(before.states))
    for record in tail:
        expected.apply(record)
    if taken_over.states != expected.states:
        differ = sum(1 for k, v in expected.states.items() if taken_over.states.get(k) != v)
        raise AssertionError(
            f"{differ} of {len(expected.states)} aggregates differ after the takeover "
            f"({len(taken_over.states)} there)"
        )
