"""What the analytics benchmark watches: rollup totals, the dashboard, the topic, the RSS.

Each watcher is a thread sampling `(time.monotonic(), value)` pairs, comparable with the
send times of the benchmark's client in the same process. Errors are kept, not raised, and
the benchmark reports them.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import psycopg
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from infra.config.settings import Settings
from schemas.codec import AvroCodec
from schemas.tracked_batch import unpack
from streams.kafka.config import consumer_config

ROLLUP_TOTAL = "SELECT COALESCE(sum(count), 0)::bigint FROM public.rollups WHERE granularity = %s"
APPLIED = "nexus_analytics_events_applied_total"
Sample = tuple[float, float]


def rollup_total(database_url: str) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(ROLLUP_TOTAL, ("minute",)).fetchone()
    return int(row[0]) if row else 0


def wait_rollups(database_url: str, target: int, timeout: float) -> tuple[bool, float, int]:
    """Poll the minute rollups' total until it reaches `target`: (reached, when, total)."""
    deadline = time.monotonic() + timeout
    with psycopg.connect(database_url, autocommit=True) as conn:
        while True:
            row = conn.execute(ROLLUP_TOTAL, ("minute",)).fetchone()
            total, now = (int(row[0]) if row else 0), time.monotonic()
            if total >= target or now > deadline:
                return total >= target, now, total
            time.sleep(0.02)


def events_applied(health_url: str) -> float:
    """The analytics worker's count of events folded into rollups."""
    text = httpx.get(f"{health_url}/metrics", timeout=5.0).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        if family.name == APPLIED.removesuffix("_total")
        for sample in family.samples
        if sample.name == APPLIED
    )


def memory_kb(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of `pid` in kB: resident memory now, and its peak."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0])
    return fields["VmRSS"], fields["VmHWM"]


class Sampler(threading.Thread):
    """Calls `read()` every `interval` seconds and keeps (monotonic time, value) pairs."""

    def __init__(self, name: str, read: Callable[[], float], interval: float) -> None:
        super().__init__(name=name, daemon=True)
        self.read, self.interval = read, interval
        self.samples: list[Sample] = []
        self.error: BaseException | None = None
        self._stopping = threading.Event()

    def stop(self) -> list[Sample]:
        self._stopping.set()
        self.join(10)
        return self.samples

    def run(self) -> None:
        try:
            while not self._stopping.is_set():
                value = self.read()
                self.samples.append((time.monotonic(), value))
                self._stopping.wait(self.interval)
        except BaseException as exc:  # reported by the benchmark, not lost in a thread
            self.error = exc


def dashboard_total(base_url: str, token: str) -> Callable[[], float]:
    """A reader of `total` from GET /api/v1/analytics/dashboard (the last hour, by minute)."""
    client = httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {token}"})

    def read() -> float:
        answer = client.get("/api/v1/analytics/dashboard", timeout=10.0)
        answer.raise_for_status()
        return float(answer.json()["total"])

    return read


class TopicCounter(threading.Thread):
    """A plain consumer from the topic's current end, counting what arrives: the reference
    for how soon an accepted event can be read at all."""

    def __init__(self, settings: Settings, topic: str) -> None:
        super().__init__(name="topic-counter", daemon=True)
        group = f"{settings.topic_prefix}.bench-tail-{uuid.uuid4().hex[:8]}"
        self.consumer = Consumer(consumer_config(settings, group))
        self.codec = AvroCodec()
        partitions = self.consumer.list_topics(topic, timeout=10).topics[topic].partitions
        # From the end offsets as of now: whatever is sent from here on is counted.
        starts = []
        for partition in partitions:
            _, high = self.consumer.get_watermark_offsets(TopicPartition(topic, partition), 10)
            starts.append(TopicPartition(topic, partition, high))
        self.consumer.assign(starts)
        self.samples: list[Sample] = []
        self.error: BaseException | None = None
        self._count = 0
        self._stopping = threading.Event()

    def stop(self) -> list[Sample]:
        self._stopping.set()
        self.join(10)
        self.consumer.close()
        return self.samples

    def run(self) -> None:
        try:
            while not self._stopping.is_set():
                messages = self.consumer.consume(10_000, 0.05)
                got = sum(len(unpack(self.codec, m.value())) for m in messages if m.error() is None)
                if got:
                    self._count += got
                    self.samples.append((time.monotonic(), float(self._count)))
        except BaseException as exc:  # reported by the benchmark, not lost in a thread
            self.error = exc


def consume_and_decode(
    settings: Settings, topic: str, batch: int = 10_000, *, decode: bool = True
) -> tuple[int, float]:
    """Every event of `topic` consumed and Avro-decoded by a plain consumer: (count, s); the
    events of a collector batch one by one, as a consumer of the analytics topic reads them.
    `decode=False` only counts them."""
    codec = AvroCodec()
    group = f"{settings.topic_prefix}.bench-decode-{uuid.uuid4().hex[:8]}"
    consumer = Consumer(consumer_config(settings, group, **{"enable.partition.eof": True}))
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        started = time.perf_counter()
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        pending, decoded = set(partitions), 0
        while pending:
            for message in consumer.consume(batch, 1.0):
                error = message.error()
                if error is None:
                    payloads = unpack(codec, message.value())
                    for payload in payloads if decode else ():
                        codec.decode(payload)
                    decoded += len(payloads)
                elif error.code() == KafkaError._PARTITION_EOF:
                    pending.discard(message.partition())
        return decoded, time.perf_counter() - started
    finally:
        consumer.close()
