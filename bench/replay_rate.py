"""Figure 4: replay of the users projection over 1,000,000 events, in events/s.

The events go straight to the events topic (not timed): user.registered for 200k users,
then user.profile_updated rounds, each user's versions contiguous and keyed by user so
they stay in order. The reference consumes and decodes the same events with no
PostgreSQL, so the ratio shows the database's share of a replay.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.environment import BenchEnvironment
from bench.kafka_log import bulk_producer, produce_all
from bench.notify import StackCpu
from bench.report import Figure, Outcome, say
from infra.config.settings import Settings
from projections.kafka_io import assign_at, poll, projection_consumer, topic_partitions
from projections.migrations import migrate
from projections.replay import replay
from schemas.codec import AvroCodec
from streams.kafka.topics import ensure_topics

NAME = "replay"
USERS = 200_000
EVENTS = 1_000_000
TARGET_RATIO = 0.8  # of consume + decode (issue 13)
BATCH = 10_000
T0 = datetime(2025, 1, 1, tzinfo=UTC)


def events(codec: AvroCodec) -> Iterator[tuple[str, bytes]]:
    """(key, Avro payload): version 1 registers every user, later versions update names."""
    rounds = EVENTS // USERS
    for version in range(1, rounds + 1):
        kind = "user.registered" if version == 1 else "user.profile_updated"
        for n in range(USERS):
            user = f"user-{n:06d}"
            yield user, codec.encode(kind, record(kind, user, version, n), check=False)


def record(kind: str, user: str, version: int, n: int) -> dict[str, Any]:
    if version == 1:
        data: dict[str, Any] = {"email": f"{user}@example.com", "name": f"User {n}", "locale": None}
    else:
        data = {"name": f"User {n} v{version}", "email": None}
    return {
        "event_id": str(uuid.uuid4()), "type": kind, "aggregate_type": "user",
        "aggregate_id": user, "aggregate_version": version,
        "occurred_at": T0 + timedelta(seconds=version * USERS + n),
        "correlation_id": user, "causation_id": None, "actor": "bench", "data": data,
    }  # fmt: skip


def write_events(settings: Settings) -> float:
    """Load the events; returns the seconds it took."""
    started = time.perf_counter()
    written = produce_all(bulk_producer(settings), settings.topic("events"), events(AvroCodec()))
    if written != EVENTS:
        raise RuntimeError(f"wrote {written} events, not {EVENTS}")
    return time.perf_counter() - started


def consume_and_decode(settings: Settings) -> tuple[int, float]:
    """Every event of the topic consumed and decoded as a replay does: (events, seconds)."""
    codec, topic = AvroCodec(), settings.topic("events")
    consumer = projection_consumer(settings, "bench.decode", **{"enable.partition.eof": True})
    try:
        partitions = topic_partitions(consumer, topic, threading.Event())
        started = time.perf_counter()
        assign_at(consumer, topic, partitions, {})
        pending, decoded = set(partitions), 0
        while pending:
            polled = poll(consumer, BATCH, 1.0)
            for message in polled.messages:
                codec.decode(message.value())
            decoded += len(polled.messages)
            pending -= set(polled.ends)
        return decoded, time.perf_counter() - started
    finally:
        consumer.close()


def stack_cpu(env: BenchEnvironment) -> StackCpu:
    """This process (the replay runs in it), Kafka and PostgreSQL with its backends."""
    assert env.kafka is not None and env.postgres is not None
    pids = {"bench": os.getpid(), "kafka": env.kafka.pid(), "postgres": env.postgres.pid()}
    return StackCpu(pids, frozenset({"postgres"}))


def cpu_us(used: dict[str, float], events: int) -> dict[str, float]:
    return {name: seconds / events * 1e6 for name, seconds in used.items()}


def describe_us(per_process: dict[str, float]) -> str:
    parts = ", ".join(f"{name} {us:.1f}" for name, us in per_process.items())
    return f"{sum(per_process.values()):.1f} ({parts})"


def run(env: BenchEnvironment) -> Outcome:
    settings = env.settings(NAME)
    ensure_topics(settings)
    migrate(settings.resolved_database_url)
    say(f"replay: writing {EVENTS:,} events")
    load_seconds = write_events(settings)
    say("replay: consume+decode reference")
    cpu = stack_cpu(env).start()
    decoded, decode_seconds = consume_and_decode(settings)
    reference_cpu = cpu_us(cpu.used()[0], decoded)
    say("replay: replaying the users projection")
    cpu.start()
    started = time.perf_counter()
    result = replay(settings, "users", progress=False)
    seconds = time.perf_counter() - started
    replay_cpu = cpu_us(cpu.used()[0], result.events)
    nexus, reference = result.events / seconds, decoded / decode_seconds
    figure = Figure(
        "replay events/s (users)", "/s", nexus, reference, "consume+decode",
        f">= {TARGET_RATIO:.0%} of it",
        nexus >= TARGET_RATIO * reference and result.events == EVENTS,
    )  # fmt: skip
    notes = [
        f"replayed {result.events:,} events in {seconds:.1f} s (v{result.old_version} -> "
        f"v{result.new_version}); consume+decode {decoded:,} in {decode_seconds:.1f} s",
        f"loading {EVENTS:,} events ({USERS:,} users) took {load_seconds:.1f} s, not timed",
        f"CPU us per event: replay {describe_us(replay_cpu)}; "
        f"consume+decode {describe_us(reference_cpu)}",
    ]
    details = {
        "events": result.events, "replay_seconds": seconds,
        "replay_internal_per_second": result.events_per_second,
        "decoded": decoded, "decode_seconds": decode_seconds, "load_seconds": load_seconds,
        "cpu_us_per_event": {"replay": replay_cpu, "consume_and_decode": reference_cpu},
    }  # fmt: skip
    return Outcome(NAME, [figure], notes, details)
