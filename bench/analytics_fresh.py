"""Freshness: batches POSTed at a steady rate, and when each became visible downstream.

An open-loop client sends batch k of the pre-built bodies at t0 + k * interval, however
long earlier answers take, and notes when its 202 came. A watcher samples a running total
(the dashboard's `total`, or a plain consumer's count). Batch k is visible once that total
has grown, since the run began, by the events of batches 0..k; its lag runs from its 202.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import httpx
import uvloop

from bench.analytics_watch import Sample

PATH = "/api/v1/ingest/batch"


@dataclass
class Batch:
    index: int
    due: float
    sent: float = 0.0
    answered: float = 0.0
    status: int = 0
    accepted: int = 0


@dataclass
class PacedBatches:
    events_per_batch: int
    interval: float
    batches: list[Batch] = field(default_factory=list)

    @property
    def accepted(self) -> int:
        return sum(b.accepted for b in self.batches)

    @property
    def achieved_rate(self) -> float:
        """Events accepted per second, from the first send to the last answer."""
        ok = [b for b in self.batches if b.status == 202]
        if not ok:
            return 0.0
        span = max(b.answered for b in ok) - min(b.sent for b in ok)
        return self.accepted / span if span > 0 else 0.0


async def _send_all(url: str, token: str, bodies: Sequence[str], interval: float) -> list[Batch]:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    limits = httpx.Limits(max_connections=16, max_keepalive_connections=16)
    async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits) as client:
        t0 = time.monotonic() + 0.1
        batches = [Batch(k, t0 + k * interval) for k in range(len(bodies))]

        async def send(batch: Batch) -> None:
            batch.sent = time.monotonic()
            answer = await client.post(PATH, content=bodies[batch.index], timeout=30.0)
            batch.answered, batch.status = time.monotonic(), answer.status_code
            if answer.status_code == 202:
                batch.accepted = int(answer.json()["accepted"])

        tasks = []
        for batch in batches:
            if (delay := batch.due - time.monotonic()) > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(send(batch)))
        await asyncio.gather(*tasks)
    return batches


def send_paced(
    url: str, token: str, bodies: Sequence[str], per_batch: int, interval: float
) -> PacedBatches:
    """POST each body at its due time; returns every batch's times and outcome."""
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        batches = runner.run(_send_all(url, token, bodies, interval))
    return PacedBatches(per_batch, interval, batches)


def lags_ms(run: PacedBatches, samples: Sequence[Sample], base: float) -> list[float]:
    """Per accepted batch, ms from its 202 to the first sample whose total (less `base`)
    covers it and every batch sent before it; a batch never covered gets NaN."""
    lags, cumulative, cursor = [], 0, 0
    for batch in sorted(run.batches, key=lambda b: b.index):
        cumulative += batch.accepted
        if batch.status != 202:
            continue
        while cursor < len(samples) and samples[cursor][1] - base < cumulative:
            cursor += 1
        if cursor == len(samples):
            lags.append(math.nan)
            continue
        lags.append(max(0.0, samples[cursor][0] - batch.answered) * 1000)
    return lags


def percentile(values: Sequence[float], share: float) -> float:
    """Nearest-rank percentile; NaN (never visible) counts as the worst; NaN when empty."""
    if not values:
        return math.nan
    ordered = sorted(values, key=lambda v: math.inf if math.isnan(v) else v)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(share * len(ordered)) - 1))]
