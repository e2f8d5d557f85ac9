"""Where the notifier's time goes during a run, from its own records rather than a profiler.

The ledger notes when each attempt was claimed (`started_at`, read as the claim batch is
built, so one batch's rows lie microseconds apart), how long the send took (`latency_ms`)
and when its outcome was recorded (`finished_at`, one value per record batch). Claims
come in batches of at most `delivery_concurrency` once per worker step, so batch sizes and
the gaps between batches show whether sending or the step loop sets the pace. The
notifier's step histogram (engine run plus Kafka transaction) says how long its steps took.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import psycopg

from bench.latency_analysis import percentile
from bench.service_metrics import HistogramTotals, histogram
from infra.local.child_process import ChildProcess

STEP = "nexus_notifier_step_seconds"
BATCH_GAP_SECONDS = 0.001  # claims further apart than this were built by different pumps
QUERY = """
SELECT started_at, finished_at, latency_ms FROM notification_ledger
WHERE notification_id = ANY(%s) ORDER BY started_at
"""


@dataclass(frozen=True)
class Pipeline:
    steps: HistogramTotals  # the notifier's steps during the run
    attempts: int
    claim_batches: int
    record_batches: int
    claim_gap_ms: float  # median time between one claim batch and the next
    send_ms: float  # median send, as the notifier timed it
    claim_to_record_ms: float  # median time from claim to the outcome recorded

    @property
    def claims_per_batch(self) -> float:
        return self.attempts / self.claim_batches if self.claim_batches else 0.0

    def describe(self) -> str:
        return (
            f"notifier: {self.steps.count:,.0f} steps, mean {self.steps.mean_ms:.1f} ms (engine"
            f" + Kafka transaction); ledger: {self.attempts:,} attempts claimed in "
            f"{self.claim_batches:,} batches (mean {self.claims_per_batch:.1f}, median gap "
            f"{self.claim_gap_ms:.1f} ms), outcomes recorded in {self.record_batches:,} "
            f"batches; send p50 {self.send_ms:.1f} ms, claim->recorded p50 "
            f"{self.claim_to_record_ms:.1f} ms"
        )


def step_totals(notifier: ChildProcess) -> HistogramTotals:
    return histogram(notifier.url, STEP)


def pipeline(
    database_url: str, ids: list[str], steps_before: HistogramTotals, notifier: ChildProcess
) -> Pipeline:
    with psycopg.connect(database_url) as conn:
        rows: list[tuple[datetime, datetime | None, float | None]] = conn.execute(
            QUERY, (ids,)
        ).fetchall()
    starts = [started.timestamp() for started, _, _ in rows]
    batch_starts = [
        t for n, t in enumerate(starts) if n == 0 or t - starts[n - 1] > BATCH_GAP_SECONDS
    ]
    gaps = [(b - a) * 1000 for a, b in zip(batch_starts, batch_starts[1:], strict=False)]
    finished = [(f, s) for s, f, _ in rows if f is not None]
    return Pipeline(
        steps=step_totals(notifier) - steps_before,
        attempts=len(rows),
        claim_batches=len(batch_starts),
        record_batches=len({f for f, _ in finished}),
        claim_gap_ms=percentile(gaps, 0.5),
        send_ms=percentile([ms for _, _, ms in rows if ms is not None], 0.5),
        claim_to_record_ms=percentile([(f - s).total_seconds() * 1000 for f, s in finished], 0.5),
    )
