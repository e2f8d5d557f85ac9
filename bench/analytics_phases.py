"""The four measurements of the analytics benchmark, each against services already running.

`http_ingest` drives the gateway's batch endpoint with wrk; `rollups` produces events
straight to the topic and times the worker's rollups; `freshness` POSTs batches at a
steady rate and watches the dashboard; `memory` feeds the worker a long simulated
timeline while sampling its resident memory. bench/analytics.py wires them together.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.analytics_fresh import PacedBatches, send_paced
from bench.analytics_load import (
    TimelineLoad,
    as_ingested,
    encode,
    json_body,
    produce,
    tracked_items,
    tracked_records,
)
from bench.analytics_watch import (
    Sample,
    Sampler,
    TopicCounter,
    dashboard_total,
    events_applied,
    memory_kb,
    rollup_total,
    wait_rollups,
)
from bench.kafka_log import bulk_producer
from bench.notify import StackCpu
from bench.report import say
from bench.service_metrics import HistogramTotals, histogram
from bench.wrk import SCRIPT, WrkResult, run_wrk
from gateway.auth import TokenVerifier
from infra.config.settings import Settings
from infra.local.child_process import ChildProcess
from schemas.codec import AvroCodec

BATCH_HISTOGRAM = "nexus_analytics_batch_seconds"
# bench/wrk.py's script with a level-2 long bracket: a JSON array body ends in `]`, and
# `}]]]` would close a plain `[[...]]` one character early.
BATCH_SCRIPT = SCRIPT.replace("wrk.body = [[{body}]]", "wrk.body = [==[{body}]==]")
assert BATCH_SCRIPT != SCRIPT, "bench/wrk.py's script no longer sets wrk.body as expected"


@contextmanager
def batch_script(body: str, bearer: str) -> Iterator[Path]:
    """A wrk script POSTing `body` (JSON without `]==]`) with the token, then deleted."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", prefix="bench-wrk-batch-") as file:
        file.write(BATCH_SCRIPT.format(body=body, token=bearer))
        file.flush()
        yield Path(file.name)


INGEST_SCOPES = ["analytics:write", "analytics:ingest"]  # a server, ingesting for many users


def token(settings: Settings, scopes: list[str]) -> str:
    verifier = TokenVerifier(
        settings.resolved_jwt_secret(), settings.jwt_issuer, settings.jwt_audience
    )
    return verifier.issue("bench", scopes, ttl_seconds=3600)


@dataclass(frozen=True)
class HttpRun:
    events_per_batch: int
    connections: int
    wrk: WrkResult
    cpu: dict[str, float]

    @property
    def events_per_second(self) -> float:
        return self.wrk.accepted_per_second * self.events_per_batch

    def as_json(self) -> dict[str, Any]:
        return {"events_per_batch": self.events_per_batch, "connections": self.connections,
                "events_per_second": self.events_per_second, "cpu": self.cpu,
                **self.wrk.__dict__}  # fmt: skip


def http_ingest(
    base_url: str,
    settings: Settings,
    items: list[dict[str, Any]],
    rounds: list[tuple[int, int]],
    seconds: float,
    cpu: StackCpu,
) -> list[HttpRun]:
    """wrk POSTing one pre-built body of `size` events over `connections`, per round."""
    runs = []
    write = token(settings, INGEST_SCOPES)
    for size, connections in rounds:
        with batch_script(json_body(items[:size]), write) as script:
            url = base_url + "/api/v1/ingest/batch"
            run_wrk(url, script, 2, connections=connections)  # warm-up, not counted
            cpu.start()
            result = run_wrk(url, script, seconds, connections=connections)
            used, elapsed = cpu.used()
        runs.append(HttpRun(size, connections, result, {n: s / elapsed for n, s in used.items()}))
        say(f"analytics: HTTP {size:,}-event batches x {connections} connections: "
            f"{runs[-1].events_per_second:,.0f} events/s")  # fmt: skip
    return runs


@dataclass(frozen=True)
class RollupRun:
    events: int
    produce_seconds: float
    seconds: float  # from the first produce until the minute rollups held every event
    reached: bool
    cpu: dict[str, float]
    batches: HistogramTotals

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.reached else 0.0


def rollups(
    settings: Settings, worker: ChildProcess, events: int, timeout: float, cpu: StackCpu
) -> RollupRun:
    """`events` produced at once; timed until SUM(count) of the minute rollups has them all."""
    url, topic = settings.resolved_database_url, settings.topic("analytics")
    pool = encode(AvroCodec(), tracked_records(settings, tracked_items(5_000, seed=2)),
                  timedelta(0))  # fmt: skip
    producer = bulk_producer(settings)
    produce(producer, topic, as_ingested(settings, pool))  # warm-up: not timed
    producer.flush(60)
    if not wait_rollups(url, len(pool), 60)[0]:
        raise RuntimeError("the analytics worker did not fold the warm-up events in 60 s")
    messages = as_ingested(settings, [pool[n % len(pool)] for n in range(events)])
    base, batches = rollup_total(url), histogram(worker.url, BATCH_HISTOGRAM)
    cpu.start()
    started = time.monotonic()
    produce(producer, topic, messages)
    if producer.flush(60):
        raise RuntimeError("events left undelivered")
    produced = time.monotonic() - started
    reached, done, _ = wait_rollups(url, base + events, timeout)
    used, elapsed = cpu.used()
    batches = histogram(worker.url, BATCH_HISTOGRAM) - batches
    shares = {name: seconds / elapsed for name, seconds in used.items()}
    return RollupRun(events, produced, done - started, reached, shares, batches)


@dataclass(frozen=True)
class FreshnessRun:
    paced: PacedBatches
    dashboard: list[Sample]
    dashboard_base: float
    consumer: list[Sample]
    cpu: dict[str, float]
    drained: bool


def freshness(
    settings: Settings,
    gateway: ChildProcess,
    rate: float,
    per_batch: int,
    seconds: float,
    cpu: StackCpu,
) -> FreshnessRun:
    """Batches of `per_batch` events at `rate` events/s for `seconds`, POSTed open-loop,
    while the dashboard's total and a plain consumer's count are sampled."""
    count = int(rate * seconds / per_batch)
    bodies = [json_body(tracked_items(per_batch, seed=100 + k)) for k in range(count)]
    read = dashboard_total(gateway.url, token(settings, ["analytics:read"]))
    base = read()
    dashboard = Sampler("dashboard", read, 0.05)
    consumer = TopicCounter(settings, settings.topic("analytics"))
    dashboard.start()
    consumer.start()
    cpu.start()
    paced = send_paced(gateway.url, token(settings, INGEST_SCOPES), bodies, per_batch,
                       per_batch / rate)  # fmt: skip
    used, elapsed = cpu.used()
    drained = _wait(lambda: bool(dashboard.samples) and
                    dashboard.samples[-1][1] - base >= paced.accepted, 30.0)  # fmt: skip
    samples, counted = dashboard.stop(), consumer.stop()
    for watcher in (dashboard, consumer):
        if watcher.error is not None:
            raise RuntimeError(f"{watcher.name} failed: {watcher.error!r}")
    shares = {name: s / elapsed for name, s in used.items()}
    return FreshnessRun(paced, samples, base, counted, shares, drained)


def _wait(done: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@dataclass
class MemoryRun:
    """The worker's RSS (kB) against the events it had folded, sampled over the run."""

    curve: list[tuple[float, float, int]] = field(default_factory=list)  # (s, events, kB)
    peak_kb: int = 0
    produced: int = 0
    seconds: float = 0.0
    cpu: dict[str, float] = field(default_factory=dict)


def memory(
    settings: Settings,
    worker: ChildProcess,
    goal: int,
    seconds: float,
    per_minute: int,
    cpu: StackCpu,
) -> MemoryRun:
    """Up to `goal` events of a simulated timeline (a week ago on, `per_minute` events in
    each of its minutes) for `seconds`, sampling the worker's VmRSS every second."""
    applied_before = events_applied(worker.url)

    def applied() -> float:
        return events_applied(worker.url) - applied_before

    records = tracked_records(settings, tracked_items(2_000, seed=3))
    start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(days=7)
    load = TimelineLoad(settings, records, start, per_minute, goal, 300_000, applied)
    run, started = MemoryRun(), time.monotonic()
    cpu.start()
    load.begin()
    while (elapsed := time.monotonic() - started) < seconds:
        folded = applied()
        run.curve.append((elapsed, folded, memory_kb(worker.pid)[0]))
        if folded >= goal or load.error is not None:
            break
        time.sleep(1.0)
    load.stop()
    used, wall = cpu.used()
    rss, run.peak_kb = memory_kb(worker.pid)
    run.curve.append((time.monotonic() - started, applied(), rss))
    run.produced, run.seconds = load.produced, time.monotonic() - started
    run.cpu = {name: s / wall for name, s in used.items()}
    if load.error is not None:
        raise RuntimeError(f"timeline load failed: {load.error!r}")
    return run
