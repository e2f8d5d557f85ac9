"""Turns the notification benchmark's raw timings into figures, notes and JSON details."""

from __future__ import annotations

import math
import os
from collections import Counter
from dataclasses import dataclass
from typing import Any

from bench.cpu import describe
from bench.latency_analysis import percentile, spread
from bench.notify_load import Deliveries, PacedSends
from bench.notify_pipeline import Pipeline
from bench.notify_reference import ReferenceRun
from bench.report import Figure, Outcome

TARGET = 1_000.0
STRETCH = 3_000.0
SAGA = "notifier"
BENCH_PROCESSES = frozenset({"webhook-sink", "bench client"})
CPUS = os.cpu_count() or 1


@dataclass(frozen=True)
class Burst:
    """N requests produced at once; times are time.time(), CPU from before the first produce
    until every saga finished (`elapsed` wall seconds)."""

    count: int
    started: float  # the first produce
    produced: float  # Kafka acknowledged the last request
    deliveries: Deliveries
    finished: bool  # every saga reached a terminal status within the tail wait
    cpu: dict[str, float]
    elapsed: float
    event_types: Counter[str]
    pipeline: Pipeline

    @property
    def delivered(self) -> int:
        return len(self.deliveries.first)

    @property
    def seconds(self) -> float:
        """From the first produce to the last notification's arrival at the sink."""
        return max(self.deliveries.first.values(), default=math.nan) - self.started

    @property
    def rate(self) -> float:
        return self.delivered / self.seconds

    def cpu_ms(self, name: str) -> float:
        return self.cpu.get(name, math.nan) / self.count * 1000

    @property
    def events_per_notification(self) -> float:
        return sum(self.event_types.values()) / self.count


@dataclass(frozen=True)
class Paced:
    sends: PacedSends
    count: int
    deliveries: Deliveries
    latency_ms: list[float]  # sink arrival - produce, per delivered request
    cpu: dict[str, float]  # CPU seconds while producing
    elapsed: float
    pipeline: Pipeline

    @property
    def missing(self) -> int:
        return self.count - len(self.latency_ms)


def shares(cpu: dict[str, float], elapsed: float) -> dict[str, float]:
    return {name: seconds / elapsed for name, seconds in cpu.items()}


def outcome(name: str, references: list[ReferenceRun], peak: Burst, steady: Paced) -> Outcome:
    serial = references[0]
    p99 = percentile(steady.latency_ms, 0.99)
    figures = [
        Figure("notifications delivered/s", "/s", peak.rate, serial.rate, "apprise loop",
               f">= {TARGET:,.0f}/s and >= the loop",
               min(TARGET, serial.rate) <= peak.rate and peak.delivered == peak.count),
        Figure("notifier CPU per notification", "ms", peak.cpu_ms(SAGA),
               serial.cpu_ms_per_send, "apprise CPU/send", "report only"),
        Figure("request->delivery p99 at half peak", "ms", p99,
               percentile(serial.send_ms, 0.99), "apprise send p99", "report"),
    ]  # fmt: skip
    details: dict[str, Any] = {
        "reference": [reference_json(r) for r in references],
        "peak": {
            "count": peak.count, "delivered": peak.delivered, "seconds": peak.seconds,
            "rate": peak.rate, "produce_seconds": peak.produced - peak.started,
            "sink_receipts": peak.deliveries.receipts,
            "repeated_keys": peak.deliveries.repeated_keys,
            "all_sagas_finished": peak.finished, "cpu_window_seconds": peak.elapsed,
            "cpu_seconds": peak.cpu, "event_types": dict(peak.event_types),
            "events_per_notification": peak.events_per_notification,
            "pipeline": pipeline_json(peak.pipeline),
        },
        "paced": {
            "offered_rate": steady.sends.rate, "achieved_rate": steady.sends.achieved_rate,
            "requests": steady.count, "missing": steady.missing,
            "repeated_keys": steady.deliveries.repeated_keys,
            "latency_ms": spread(steady.latency_ms),
            "send_lag_ms": spread([lag * 1000 for lag in steady.sends.lag]),
            "cpu_shares": shares(steady.cpu, steady.elapsed),
            "pipeline": pipeline_json(steady.pipeline),
        },
    }  # fmt: skip
    return Outcome(name, figures, notes(references, peak, steady), details)


def pipeline_json(stages: Pipeline) -> dict[str, Any]:
    return {
        "steps": stages.steps.count, "step_mean_ms": stages.steps.mean_ms,
        "attempts": stages.attempts, "claim_batches": stages.claim_batches,
        "claims_per_batch": stages.claims_per_batch, "record_batches": stages.record_batches,
        "claim_gap_ms_p50": stages.claim_gap_ms, "send_ms_p50": stages.send_ms,
        "claim_to_record_ms_p50": stages.claim_to_record_ms,
    }  # fmt: skip


def reference_json(run: ReferenceRun) -> dict[str, Any]:
    return {
        "threads": run.threads, "sends": run.sends, "failures": run.failures,
        "seconds": run.seconds, "rate": run.rate, "cpu_ms_per_send": run.cpu_ms_per_send,
        "send_ms": spread(run.send_ms), "sink_received": run.received,
    }  # fmt: skip


def notes(references: list[ReferenceRun], peak: Burst, steady: Paced) -> list[str]:
    return [
        *peak_notes(references, peak),
        *overhead_notes(references[0], references[1], peak),
        *paced_notes(steady),
        *problems(peak, steady),
    ]


def peak_notes(references: list[ReferenceRun], peak: Burst) -> list[str]:
    serial, threaded = references
    return [
        f"peak: {peak.count:,} requests produced in {peak.produced - peak.started:.2f} s; "
        f"{peak.delivered:,} delivered {peak.seconds:.2f} s after the first produce "
        f"({peak.rate:,.0f}/s; stretch {STRETCH:,.0f}/s "
        f"{'met' if peak.rate >= STRETCH else 'not met'})",
        f"reference: apprise json:// {serial.rate:,.0f}/s in a plain loop ({serial.sends:,} sends, "
        f"send p50 {percentile(serial.send_ms, 0.5):.2f} ms); over {threaded.threads} threads "
        f"like the notifier: {threaded.rate:,.0f}/s; sink logged "
        f"{serial.received:,} + {threaded.received:,} of {serial.sends + threaded.sends:,}",
        f"CPU (share of one core) from first produce to last saga finished "
        f"({peak.elapsed:.1f} s): {describe(shares(peak.cpu, peak.elapsed))}",
        f"peak run {peak.pipeline.describe()}",
    ]


def overhead_notes(serial: ReferenceRun, threaded: ReferenceRun, peak: Burst) -> list[str]:
    stack_ms = sum(peak.cpu_ms(n) for n in peak.cpu if n not in BENCH_PROCESSES)
    types = ", ".join(
        f"{t.removeprefix('notification.')} {n:,}" for t, n in peak.event_types.items()
    )
    return [
        f"saga overhead per notification (CPU ms): notifier {peak.cpu_ms(SAGA):.2f}, kafka "
        f"{peak.cpu_ms('kafka'):.2f}, postgres {peak.cpu_ms('postgres'):.2f}, projector "
        f"(notifications view) {peak.cpu_ms('projector'):.2f}, sink "
        f"{peak.cpu_ms('webhook-sink'):.2f}; apprise loop {serial.cpu_ms_per_send:.2f} per send"
        f" ({threaded.cpu_ms_per_send:.2f} over {threaded.threads} threads)",
        f"the stack spent {stack_ms:.2f} CPU ms per notification in all: at that cost "
        f"{CPUS} CPUs deliver at most {CPUS * 1000 / stack_ms:,.0f}/s",
        f"Kafka events per notification: {peak.events_per_notification:.2f} in the saga topic "
        f"({types}) + 1 request",
    ]


def paced_notes(steady: Paced) -> list[str]:
    ms = steady.latency_ms
    return [
        f"half peak: offered {steady.sends.rate:,.0f}/s for {steady.count:,} requests; achieved "
        f"{steady.sends.achieved_rate:,.0f}/s; produce lag p99 "
        f"{percentile([lag * 1000 for lag in steady.sends.lag], 0.99):.1f} ms",
        f"request->delivery at half peak: p50 {percentile(ms, 0.5):.1f} ms, p90 "
        f"{percentile(ms, 0.9):.1f} ms, p99 {percentile(ms, 0.99):.1f} ms, max "
        f"{max(ms, default=math.nan):.1f} ms",
        f"CPU (share of one core) while pacing: {describe(shares(steady.cpu, steady.elapsed))}",
        f"half-peak run {steady.pipeline.describe()}",
    ]


def problems(peak: Burst, steady: Paced) -> list[str]:
    lines = []
    if peak.delivered < peak.count or steady.missing:
        lines.append(f"missing at the sink: {peak.count - peak.delivered:,} of the peak run, "
                     f"{steady.missing:,} of the paced run")  # fmt: skip
    if not peak.finished:
        lines.append("not every saga of the peak run finished within the tail wait")
    repeated = peak.deliveries.repeated_keys + steady.deliveries.repeated_keys
    if repeated:
        lines.append(f"{repeated:,} requests repeated an attempt key the sink had seen")
    return lines
