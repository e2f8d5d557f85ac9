"""Load for the analytics benchmark: tracked events as JSON bodies and as encoded records.

The events come from the demo's traffic model (infra/cli/demo_traffic.py), so their mix, sizes
and users are those of `nexus demo`. Bodies are what `POST /api/v1/ingest/batch` takes;
records are checked and encoded exactly as the Ingestor would write them, before any
clock starts, so a raw producer can send the very bytes the gateway would have sent.
"""

from __future__ import annotations

import copy
import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
from confluent_kafka import KafkaError, Producer
from confluent_kafka import Message as KafkaMessage

from infra.cli.demo_traffic import TrafficModel, TrafficParams
from infra.config.settings import Settings
from schemas.codec import AvroCodec
from schemas.tracking import TrackedEvent, TrackingValidator
from schemas.tracking_plan import load_plan
from streams.ingest import Message, collector_batches
from streams.kafka.config import producer_config

Encoded = Message  # (key, Avro payload), as the ingestion produces it


def tracked_items(count: int, seed: int = 1, at: datetime | None = None) -> list[dict[str, Any]]:
    """`count` demo items from about one second of traffic ending at `at` (default now)."""
    end = at or datetime.now(UTC)
    model = TrafficModel(TrafficParams(rate=float(count), incident_every=0, seed=seed), end)
    found: list[dict[str, Any]] = []
    start = 0.0
    while len(found) < count:
        start -= 0.2
        found += model.tick(start, 0.2).items
    return found[:count]


def json_body(items: list[dict[str, Any]]) -> str:
    return json.dumps(items, separators=(",", ":"))


def tracked_records(settings: Settings, items: list[dict[str, Any]]) -> list[TrackedEvent]:
    """The items as the Ingestor checks them: records with ids and receipt times."""
    validator = TrackingValidator(load_plan(settings.analytics_file))
    now = datetime.now(UTC)
    records = []
    for item in items:
        checked = validator.validate(item, now=now, source="bench", event_id=str(uuid.uuid4()))
        if not isinstance(checked, TrackedEvent):
            raise RuntimeError(f"the demo model made an invalid item {item}: {checked}")
        records.append(checked)
    return records


def ingest_costs_us(settings: Settings, items: list[dict[str, Any]]) -> dict[str, float]:
    """Microseconds of CPU per event for the Python steps of ingesting `items`, measured
    in this process as the gateway takes them: splitting the JSON body into items, checking
    each against the compiled plan (schemas.tracking_structs), encoding each record."""
    body, codec = json_body(items).encode(), AvroCodec()
    validator = TrackingValidator(load_plan(settings.analytics_file), codec.registry)
    now, count = datetime.now(UTC), len(items)
    started = time.process_time()
    parsed = msgspec.json.decode(body, type=list[msgspec.Raw])
    parsing = time.process_time()
    checked = [
        validator.check_json(item, now=now, source="bench", event_id=str(uuid.uuid4()))
        for item in parsed
    ]
    checking = time.process_time()
    for event in checked:
        if event is None:
            raise RuntimeError("the compiled tracking plan declined a demo item")
        codec.encoder(event.schema)(event.record)
    encoding = time.process_time()
    return {
        "parse_json": (parsing - started) / count * 1e6,
        "validate": (checking - parsing) / count * 1e6,
        "encode": (encoding - checking) / count * 1e6,
    }


def encode(codec: AvroCodec, records: list[TrackedEvent], shift: timedelta) -> list[Encoded]:
    """The records encoded, their timestamp and receipt time moved by `shift`."""
    encoded: list[Encoded] = []
    for event in records:
        record = copy.copy(event.record)
        record["timestamp"] += shift
        record["received_at"] += shift
        encoded.append((event.key, codec.encode(event.schema, record, check=False)))
    return encoded


def raw_rate(settings: Settings, pool: list[Encoded], count: int) -> float:
    """Events/s of a raw Producer (the platform's config) sending `count` events cycled
    from `pool`, until every one is acknowledged."""
    producer = Producer(producer_config(settings))
    topic, failures = settings.topic("analytics"), 0

    def delivered(err: KafkaError | None, msg: KafkaMessage) -> None:
        nonlocal failures
        failures += err is not None

    started = time.perf_counter()
    for n in range(count):
        key, value = pool[n % len(pool)]
        while True:
            try:
                producer.produce(topic, value, key, on_delivery=delivered)
                break
            except BufferError:
                producer.poll(0.01)
        if n % 1000 == 0:
            producer.poll(0)
    remaining = producer.flush(120)
    seconds = time.perf_counter() - started
    if remaining or failures:
        raise RuntimeError(f"raw producer: {remaining} undelivered, {failures} failed")
    return count / seconds


def as_ingested(settings: Settings, events: list[Encoded], per_call: int = 2_000) -> list[Encoded]:
    """`events` as the ingestion writes them: collector batches of `per_call` at a time (an
    HTTP batch), so the worker reads what it would behind the gateway."""
    codec, calls = AvroCodec(), range(0, len(events), per_call)
    return [
        record
        for start in calls
        for record in collector_batches(
            codec, events[start : start + per_call], settings.partitions
        )
    ]


def produce(producer: Producer, topic: str, messages: list[Encoded]) -> None:
    """Queue `messages`, waiting out a full queue (delivery is checked by the caller)."""
    for key, value in messages:
        while True:
            try:
                producer.produce(topic, value, key)
                break
            except BufferError:
                producer.poll(0.02)
    producer.poll(0)


@dataclass
class TimelineLoad:
    """A thread producing events of a simulated timeline: each minute of it gets `per_minute`
    events, the pool re-encoded with that minute's times, until `total` or `stop()`.

    It stays at most `lead` events ahead of `applied()`, so the backlog, not the bench,
    sets the pace, and the bench does not burn CPU the worker could use.
    """

    settings: Settings
    records: list[TrackedEvent]
    start: datetime
    per_minute: int
    total: int
    lead: int
    applied: Callable[[], float]
    produced: int = 0
    error: BaseException | None = None

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="timeline-load", daemon=True)

    def begin(self) -> TimelineLoad:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)

    def _run(self) -> None:
        try:
            self._produce_all()
        except BaseException as exc:  # reported by the benchmark, not lost in a thread
            self.error = exc

    def _produce_all(self) -> None:
        codec, topic = AvroCodec(), self.settings.topic("analytics")
        producer = Producer(producer_config(self.settings, **{"linger.ms": 20}))
        base = min(event.record["timestamp"] for event in self.records)
        minute = 0
        while self.produced < self.total and not self._stop.is_set():
            if self.produced - self.applied() > self.lead:
                self._stop.wait(0.1)
                continue
            shift = self.start + timedelta(minutes=minute) - base
            pool = encode(codec, self.records, shift)
            batch = [pool[n % len(pool)] for n in range(self.per_minute)]
            produce(producer, topic, as_ingested(self.settings, batch))
            self.produced += len(batch)
            minute += 1
        if producer.flush(60):
            raise RuntimeError("timeline load: events left undelivered")
