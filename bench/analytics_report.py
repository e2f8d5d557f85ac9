"""Turns the analytics benchmark's measurements into figures, notes and JSON details."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from bench.analytics_fresh import lags_ms, percentile
from bench.analytics_phases import FreshnessRun, HttpRun, MemoryRun, RollupRun
from bench.cpu import describe
from bench.report import Figure, Outcome

HTTP_TARGET, HTTP_STRETCH = 50_000.0, 100_000.0
HTTP_RAW_RATIO = 0.2  # and of the raw producer (issue 13)
ROLLUP_TARGET, ROLLUP_STRETCH = 50_000.0, 100_000.0
ROLLUP_RATIO = 1.0  # and of a plain consume + decode: the fold is not the bottleneck
FRESH_TARGET_MS = 2_000.0
RSS_TARGET_MB = 300.0
GATEWAY_RSS_TARGET_MB = 150.0
KB_PER_MB = 1024


@dataclass
class Results:
    http: list[HttpRun] = field(default_factory=list)
    http_pair: list[HttpRun] = field(default_factory=list)  # two gateway processes
    http_in_topic: int = 0
    raw_rate: float = math.nan
    gateway_peak_kb: int = 0  # VmHWM after the HTTP ingestion rounds
    rss_idle_kb: int = 0
    rss_after_rollups_kb: int = 0
    rss_after_fresh_kb: int = 0
    rollups: RollupRun | None = None
    decoded: tuple[int, float] = (0, math.nan)
    fresh: FreshnessRun | None = None
    light: FreshnessRun | None = None
    ingest_costs_us: dict[str, float] = field(default_factory=dict)
    memory: MemoryRun | None = None


def outcome(name: str, r: Results) -> Outcome:
    assert r.rollups is not None and r.fresh is not None and r.memory is not None
    figures, notes = http_figure(r), http_notes(r)
    figures.append(rollup_figure(r))
    notes += rollup_notes(r)
    fresh_figure, fresh_notes, fresh_details = freshness_report(r.fresh)
    figures.append(fresh_figure)
    notes += fresh_notes
    if r.light is not None:
        light_figure, light_notes, light_details = freshness_report(r.light)
        figures.append(dataclasses.replace(light_figure, target="-", passed=None))
        notes += light_notes
        fresh_details = {"heavy": fresh_details, "light": light_details}
    figures.append(memory_figure(r))
    notes += memory_notes(r)
    details: dict[str, Any] = {
        "http": [run.as_json() for run in r.http],
        "http_two_gateways": [run.as_json() for run in r.http_pair],
        "http_events_in_topic": r.http_in_topic,
        "raw_producer_per_second": r.raw_rate, "rollups": r.rollups.__dict__,
        "decoded": {"events": r.decoded[0], "seconds": r.decoded[1]},
        "freshness": fresh_details, "memory": r.memory.__dict__,
        "gateway_peak_kb": r.gateway_peak_kb,
        "rss_kb": {"idle": r.rss_idle_kb, "after_rollups": r.rss_after_rollups_kb,
                   "after_freshness": r.rss_after_fresh_kb},
    }  # fmt: skip
    return Outcome(name, figures, notes, details)


def http_figure(r: Results) -> list[Figure]:
    figures = [_ingest_figure("HTTP batch ingest events/s", r.http, r.raw_rate)]
    if r.http_pair:
        figures.append(_ingest_figure("same, 2 gateway processes", r.http_pair, r.raw_rate))
    figures.append(
        Figure(
            "gateway RSS peak under batch ingest",
            "MB",
            r.gateway_peak_kb / KB_PER_MB,
            None,
            "-",
            f"<= {GATEWAY_RSS_TARGET_MB:,.0f} MB",
            r.gateway_peak_kb / KB_PER_MB <= GATEWAY_RSS_TARGET_MB,
        )  # fmt: skip
    )
    return figures


def _ingest_figure(label: str, runs: list[HttpRun], raw_rate: float) -> Figure:
    rate = max(run.events_per_second for run in runs)
    return Figure(
        label, "/s", rate, raw_rate, "raw Producer",
        f">= {HTTP_TARGET:,.0f}/s and {HTTP_RAW_RATIO:.0%} of raw",
        rate >= max(HTTP_TARGET, HTTP_RAW_RATIO * raw_rate),
    )  # fmt: skip


def http_notes(r: Results) -> list[str]:
    notes = [
        f"HTTP: {run.events_per_batch:,}-event batches x {run.connections} connections"
        f"{' (2 gateways)' if run in r.http_pair else ''}: "
        f"{run.events_per_second:,.0f} events/s ({run.wrk.accepted_per_second:,.1f} req/s, "
        f"p50 {run.wrk.p50_ms:,.0f} ms, p99 {run.wrk.p99_ms:,.0f} ms); CPU {describe(run.cpu)}"
        for run in [*r.http, *r.http_pair]
    ]
    counted = sum(run.wrk.accepted * run.events_per_batch for run in [*r.http, *r.http_pair])
    verdict = "ok" if r.http_in_topic >= counted else "MISSING EVENTS"
    notes.append(
        f"HTTP: topic holds {r.http_in_topic:,} events, wrk counted {counted:,} in 202s "
        f"({verdict}; warm-ups and answers in flight at the end add to the topic); stretch "
        f"{HTTP_STRETCH:,.0f}/s; raw Producer of the same pre-encoded events {r.raw_rate:,.0f}/s"
    )
    if r.ingest_costs_us:
        costs = r.ingest_costs_us
        total = sum(costs.values())
        notes.append(
            "HTTP: the gateway's Python steps per event, measured in the bench process: "
            + ", ".join(f"{step} {us:.1f} us" for step, us in costs.items())
            + f"; {total:.1f} us in all, a ceiling of {1e6 / total:,.0f} events/s per core "
            "before HTTP and the producer's own costs"
        )
    errors = sum(run.wrk.other + run.wrk.socket_errors + run.wrk.timeouts for run in r.http)
    if errors:
        notes.append(f"HTTP: {errors:,} non-202 answers, socket errors or timeouts")
    return notes


def rollup_figure(r: Results) -> Figure:
    assert r.rollups is not None
    rate, (decoded, seconds) = r.rollups.rate, r.decoded
    return Figure(
        "ingest -> rollups events/s", "/s", rate, decoded / seconds, "consume+decode",
        f">= {ROLLUP_TARGET:,.0f}/s and {ROLLUP_RATIO:.0%} of it",
        r.rollups.reached and rate >= max(ROLLUP_TARGET, ROLLUP_RATIO * decoded / seconds),
    )  # fmt: skip


def rollup_notes(r: Results) -> list[str]:
    assert r.rollups is not None
    run, batches = r.rollups, r.rollups.batches
    reached = "" if run.reached else " (TIMED OUT before the rollups held them all)"
    per_batch = run.events / batches.count if batches.count else math.nan
    return [
        f"rollups: {run.events:,} events produced in {run.produce_seconds:.1f} s, in the minute "
        f"rollups {run.seconds:.1f} s after the first{reached}; {batches.count:.0f} batch "
        f"transactions, mean {batches.mean_ms:,.0f} ms, ~{per_batch:,.0f} events each "
        f"({batches.seconds / run.seconds:.0%} of the wall time); stretch {ROLLUP_STRETCH:,.0f}/s",
        f"rollups: CPU {describe(run.cpu)}; consume+decode reference: {r.decoded[0]:,} events "
        f"in {r.decoded[1]:.1f} s",
    ]


def freshness_report(run: FreshnessRun) -> tuple[Figure, list[str], dict[str, Any]]:
    dashboard = lags_ms(run.paced, run.dashboard, run.dashboard_base)
    consumer = lags_ms(run.paced, run.consumer, 0.0)
    p99, reference = percentile(dashboard, 0.99), percentile(consumer, 0.99)
    offered = run.paced.events_per_batch / run.paced.interval
    achieved = run.paced.achieved_rate
    failed = sum(1 for b in run.paced.batches if b.status != 202)
    fair = achieved >= 0.95 * offered and not failed and run.drained
    figure = Figure(
        f"freshness p99 @ {offered / 1000:,.0f}k/s: 202 -> dashboard", "ms", p99,
        reference, "plain consumer",
        f"<= {FRESH_TARGET_MS:,.0f} ms", fair and p99 <= FRESH_TARGET_MS,
    )  # fmt: skip
    quarter = max(1, len(dashboard) // 4)
    trend = (
        f"; p50 of the first quarter of batches {percentile(dashboard[:quarter], 0.5):,.0f} ms,"
        f" of the last {percentile(dashboard[-quarter:], 0.5):,.0f} ms"
    )
    polls = len(run.dashboard)
    span = run.dashboard[-1][0] - run.dashboard[0][0] if polls > 1 else math.nan
    answers = sorted((b.answered - b.sent) * 1000 for b in run.paced.batches if b.status == 202)
    notes = [
        f"freshness: offered {offered:,.0f} events/s in {len(run.paced.batches)} batches of "
        f"{run.paced.events_per_batch:,}, achieved {achieved:,.0f}/s, {failed} failed; 202 "
        f"p50 {percentile(answers, 0.5):,.0f} ms p99 {percentile(answers, 0.99):,.0f} ms",
        f"freshness: dashboard p50 {percentile(dashboard, 0.5):,.0f} ms, p99 {p99:,.0f} ms, "
        f"max {percentile(dashboard, 1.0):,.0f} ms; plain consumer p50 "
        f"{percentile(consumer, 0.5):,.0f} ms p99 {reference:,.0f} ms; dashboard polled every "
        f"{span / max(polls - 1, 1) * 1000:,.0f} ms on average ({polls:,} polls)"
        + trend
        + ("" if run.drained else "; the dashboard NEVER showed every event"),
        f"freshness: CPU {describe(run.cpu)}",
    ]
    details = {"dashboard_lags_ms": dashboard, "consumer_lags_ms": consumer,
               "offered": offered, "achieved": achieved, "failed_batches": failed,
               "drained": run.drained, "polls": polls}  # fmt: skip
    return figure, notes, details


def memory_figure(r: Results) -> Figure:
    assert r.memory is not None
    end_mb = r.memory.curve[-1][2] / KB_PER_MB
    worst = max(kb for _, _, kb in r.memory.curve) / KB_PER_MB
    events = r.memory.curve[-1][1]
    return Figure(
        f"worker RSS after {events / 1e6:,.2f}M events", "MB", end_mb,
        r.rss_idle_kb / KB_PER_MB, "idle worker",
        f"<= {RSS_TARGET_MB:,.0f} MB", worst <= RSS_TARGET_MB,
    )  # fmt: skip


def memory_notes(r: Results) -> list[str]:
    assert r.memory is not None and r.rollups is not None
    run, curve = r.memory, r.memory.curve
    points = [curve[round(share * (len(curve) - 1))] for share in (0.0, 0.25, 0.5, 0.75, 1.0)]
    steps = ", ".join(f"{s:.0f} s {events:,.0f} ev {kb / KB_PER_MB:,.0f} MB"
                      for s, events, kb in points)  # fmt: skip
    folded = curve[-1][1]
    return [
        f"RSS: idle {r.rss_idle_kb / KB_PER_MB:,.0f} MB, after the rollups run "
        f"{r.rss_after_rollups_kb / KB_PER_MB:,.0f} MB, after freshness "
        f"{r.rss_after_fresh_kb / KB_PER_MB:,.0f} MB; then the timeline: {steps}",
        f"RSS: peak (VmHWM) {run.peak_kb / KB_PER_MB:,.0f} MB; {folded:,.0f} events folded in "
        f"{run.seconds:.0f} s ({folded / run.seconds:,.0f}/s), {run.produced:,} produced; "
        f"CPU {describe(run.cpu)}",
    ]
