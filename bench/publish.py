"""Figure 2: EventBus.publish events/s, against a raw confluent-kafka Producer.

Both write `activity.recorded` events to the same events topic with the platform's
producer config and wait for every delivery. The bus validates, encodes and awaits each
event (driven by asyncio.gather over chunks); the raw producer sends one pre-encoded payload.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from bench.environment import BenchEnvironment
from bench.report import Figure, Outcome
from infra.config.settings import Settings
from schemas.codec import AvroCodec
from streams.bus import EventBus, NewEvent
from streams.kafka.config import producer_config
from streams.kafka.topics import ensure_topics

NAME = "publish"
EVENTS = 200_000
WARMUP = 5_000
CHUNK = 5_000
SUBJECTS = 1_000
TARGET_RATIO = 0.5  # one await per event
BATCH_TARGET_RATIO = 0.3  # publish_many (issue 13)
TYPE = "activity.recorded"


def data(n: int) -> dict[str, Any]:
    return {"kind": "page.viewed", "subject_id": f"subject-{n % SUBJECTS}", "attributes": {}}


def encoded_event(codec: AvroCodec) -> bytes:
    """One activity.recorded event, as EventBus.publish would encode it."""
    record = {
        "event_id": str(uuid.uuid4()), "type": TYPE, "aggregate_type": "activity",
        "aggregate_id": "subject-0", "aggregate_version": 0, "occurred_at": datetime.now(UTC),
        "correlation_id": str(uuid.uuid4()), "causation_id": None, "actor": "bench",
        "data": data(0),
    }  # fmt: skip
    return codec.encode(TYPE, record)


def raw_rate(settings: Settings, payload: bytes, count: int) -> float:
    """Events/s of a raw Producer sending `payload` `count` times, until all are delivered."""
    producer = Producer(producer_config(settings))
    topic, failures = settings.topic("events"), 0

    def delivered(err: KafkaError | None, msg: Message) -> None:
        nonlocal failures
        failures += err is not None

    started = time.perf_counter()
    for n in range(count):
        while True:
            try:
                producer.produce(topic, payload, f"subject-{n % SUBJECTS}", on_delivery=delivered)
                break
            except BufferError:
                producer.poll(0.01)
        producer.poll(0)
    remaining = producer.flush(120)
    seconds = time.perf_counter() - started
    if remaining or failures:
        raise RuntimeError(f"raw producer: {remaining} undelivered, {failures} failed")
    return count / seconds


def cpu_us_per_event(run: Callable[[], float], events: int) -> tuple[float, float]:
    """(what `run` returns, a rate; this process's CPU µs per event meanwhile)."""
    started = time.process_time()
    rate = run()
    return rate, (time.process_time() - started) / events * 1e6


async def batch_rate(bus: EventBus, count: int) -> float:
    """Events/s of EventBus.publish_many, `CHUNK` events per call."""
    started = time.perf_counter()
    for first in range(0, count, CHUNK):
        await bus.publish_many(
            [
                NewEvent(TYPE, f"subject-{n % SUBJECTS}", data(n), actor="bench")
                for n in range(first, min(first + CHUNK, count))
            ]
        )
    return count / (time.perf_counter() - started)


async def bus_rate(bus: EventBus, count: int) -> float:
    """Events/s of EventBus.publish, `CHUNK` concurrent publishes at a time."""
    started = time.perf_counter()
    for first in range(0, count, CHUNK):
        await asyncio.gather(
            *(
                bus.publish(TYPE, f"subject-{n % SUBJECTS}", data(n), actor="bench")
                for n in range(first, min(first + CHUNK, count))
            )
        )
    return count / (time.perf_counter() - started)


def run(env: BenchEnvironment) -> Outcome:
    settings = env.settings(NAME)
    ensure_topics(settings)
    payload = encoded_event(AvroCodec())
    raw_rate(settings, payload, WARMUP)
    raw, raw_cpu = cpu_us_per_event(lambda: raw_rate(settings, payload, EVENTS), EVENTS)
    bus = EventBus(settings)
    try:
        asyncio.run(bus_rate(bus, WARMUP))
        nexus, bus_cpu = cpu_us_per_event(lambda: asyncio.run(bus_rate(bus, EVENTS)), EVENTS)
        batched, batch_cpu = cpu_us_per_event(lambda: asyncio.run(batch_rate(bus, EVENTS)), EVENTS)
    finally:
        bus.close()
    figure = Figure(
        "EventBus.publish events/s", "/s", nexus, raw, "raw Producer",
        f">= {TARGET_RATIO:.0%} of raw", nexus >= TARGET_RATIO * raw,
    )  # fmt: skip
    batch_figure = Figure(
        "EventBus.publish_many events/s", "/s", batched, raw, "raw Producer",
        f">= {BATCH_TARGET_RATIO:.0%} of raw", batched >= BATCH_TARGET_RATIO * raw,
    )  # fmt: skip
    notes = [
        f"{EVENTS:,} events each after {WARMUP:,} warmup; bus: asyncio.gather of {CHUNK:,} "
        f"publishes at a time; raw: one pre-encoded {len(payload)}-byte payload",
        f"CPU of this process (librdkafka's threads included) per event: raw {raw_cpu:.1f} us, "
        f"publish {bus_cpu:.1f} us, publish_many {batch_cpu:.1f} us (its caller building the "
        "NewEvents included)",
    ]
    details = {"events": EVENTS, "bus_per_second": nexus, "batch_per_second": batched,
               "raw_per_second": raw, "cpu_us_per_event": {"raw": raw_cpu, "publish": bus_cpu,
               "publish_many": batch_cpu}}  # fmt: skip
    return Outcome(NAME, [figure, batch_figure], notes, details)
