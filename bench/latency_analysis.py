"""Turns the latency benchmark's raw timings into figures, notes and JSON details.

Latency runs from each command's send to the first poll that saw its row. The reference
is the HTTP 202 answer latency of the same requests: the part spent before the command
was durable in Kafka. The row's registered_at (the processor's decision time, wall clock)
splits the rest into "until decided" and "decided until visible".
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from bench.cpu import describe
from bench.paced_client import PacedRun, Sent
from bench.report import Figure, Outcome
from bench.service_metrics import HistogramTotals
from bench.wrk import WrkResult

TARGET_P99_MS = 100.0  # at half of peak
LIGHT_TARGET_P99_MS = 50.0  # at 100/s


@dataclass(frozen=True)
class Peak:
    wrk: WrkResult
    drain_rate: float  # users projected per second, from wrk's start to the last row


@dataclass(frozen=True)
class Sightings:
    """By request index: when its row appeared (monotonic) and was decided (epoch seconds)."""

    seen: dict[int, float]
    decided: dict[int, float]
    polls: int
    drained: bool


@dataclass(frozen=True)
class BatchTimes:
    """Step transactions of the command processor, batches of the projector."""

    processor: HistogramTotals
    projector: HistogramTotals

    def __sub__(self, earlier: BatchTimes) -> BatchTimes:
        return BatchTimes(self.processor - earlier.processor, self.projector - earlier.projector)


@dataclass(frozen=True)
class Stages:
    """Where the paced run's time went: batch transactions, and CPU share per process."""

    batches: BatchTimes
    cpu: dict[str, float]


def percentile(values: list[float], share: float) -> float:
    """Nearest-rank percentile of `values` (NaN when empty)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(share * len(ordered)) - 1))]


def spread(values: list[float]) -> dict[str, float]:
    return {f"p{q}": percentile(values, q / 100) for q in (50, 90, 99)} | {
        "max": max(values, default=math.nan)
    }


def timings(accepted: list[Sent], watch: Sightings) -> dict[str, list[float]]:
    """Milliseconds per accepted request, for each stage we can see from outside."""
    seen, decided = watch.seen, watch.decided
    return {
        "to_row": [(seen[r.index] - r.sent) * 1000 for r in accepted if r.index in seen],
        "to_202": [(r.answered - r.sent) * 1000 for r in accepted],
        "to_decided": [
            (decided[r.index] - r.sent_at) * 1000 for r in accepted if r.index in decided
        ],
        "decided_to_row": [
            (seen[r.index] - r.sent) * 1000 - (decided[r.index] - r.sent_at) * 1000
            for r in accepted
            if r.index in decided
        ],
    }


def outcome(
    name: str,
    peak: Peak,
    result: PacedRun,
    watch: Sightings,
    stages: Stages,
    light: tuple[PacedRun, Sightings],
) -> Outcome:
    accepted = [r for r in result.requests if r.status == 202]
    ms = timings(accepted, watch)
    light_ms = timings([r for r in light[0].requests if r.status == 202], light[1])["to_row"]
    missing = len(accepted) - len(ms["to_row"])
    p99, light_p99 = percentile(ms["to_row"], 0.99), percentile(light_ms, 0.99)
    figures = [
        Figure("cmd->projection p50", "ms", percentile(ms["to_row"], 0.5),
               percentile(ms["to_202"], 0.5), "HTTP 202 p50"),
        Figure("cmd->projection p99", "ms", p99, percentile(ms["to_202"], 0.99), "HTTP 202 p99",
               f"<= {TARGET_P99_MS:.0f} ms", p99 <= TARGET_P99_MS and missing == 0),
        Figure(f"cmd->projection p99 at {light[0].rate:,.0f}/s", "ms",
               light_p99, percentile(light_ms, 0.5), "its p50",
               f"<= {LIGHT_TARGET_P99_MS:.0f} ms", light_p99 <= LIGHT_TARGET_P99_MS),
    ]  # fmt: skip
    details: dict[str, Any] = {key: spread(values) for key, values in ms.items()}
    details |= {
        "peak": peak.wrk.__dict__ | {"accepted_per_second": peak.wrk.accepted_per_second},
        "drain_rate": peak.drain_rate, "offered_rate": result.rate,
        "achieved_rate": result.achieved_rate, "lanes": result.lanes, "missing_rows": missing,
        "send_lag_ms": spread([(r.sent - r.due) * 1000 for r in result.requests]),
        "processor_batches": stages.batches.processor.__dict__,
        "projector_batches": stages.batches.projector.__dict__,
        "cpu": stages.cpu,
    }  # fmt: skip
    return Outcome(name, figures, notes(peak, result, watch, ms, stages, missing), details)


def notes(
    peak: Peak,
    result: PacedRun,
    watch: Sightings,
    ms: dict[str, list[float]],
    stages: Stages,
    missing: int,
) -> list[str]:
    lag = [(r.sent - r.due) * 1000 for r in result.requests]
    batches = stages.batches
    lines = [
        f"peak with the whole stack up: {peak.wrk.accepted_per_second:,.0f} accepted/s (wrk); "
        f"projected end to end: {peak.drain_rate:,.0f} users/s",
        f"offered {result.rate:,.0f}/s over {result.lanes} connections; achieved "
        f"{result.achieved_rate:,.0f}/s; client send lag p99 {percentile(lag, 0.99):.1f} ms",
        f"{len(ms['to_202']):,} of {len(result.requests):,} answered 202; {len(ms['to_row']):,} "
        f"rows seen; max {max(ms['to_row'], default=math.nan):,.0f} ms; {watch.polls:,} polls",
        f"send->decided p50 {percentile(ms['to_decided'], 0.5):.0f} ms p99 "
        f"{percentile(ms['to_decided'], 0.99):.0f} ms; decided->row visible p50 "
        f"{percentile(ms['decided_to_row'], 0.5):.0f} ms p99 "
        f"{percentile(ms['decided_to_row'], 0.99):.0f} ms",
        f"processor: {batches.processor.count:,.0f} transactions, mean "
        f"{batches.processor.mean_ms:.1f} ms; projector: {batches.projector.count:,.0f} batches, "
        f"mean {batches.projector.mean_ms:.1f} ms",
        f"CPU (share of one core) while pacing: {describe(stages.cpu)}",
    ]
    if result.achieved_rate < 0.95 * result.rate:
        lines.append(
            f"the Python client could not keep {result.rate:,.0f}/s; the latency figures are "
            f"at the achieved {result.achieved_rate:,.0f}/s"
        )
    if peak.drain_rate < result.rate:
        lines.append("the stack drains slower than the offered rate: latency grows with backlog")
    if missing or not watch.drained:
        lines.append(f"{missing:,} accepted commands never showed up within the tail wait")
    return lines
