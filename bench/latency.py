"""Figure 3: command -> projection latency p50/p99 at half of peak load.

With the command processor, projector and gateway running, wrk first finds the gateway's
peak accepted/s (and the stack's end-to-end drain rate). Then an open-loop client sends
RegisterUser commands at half that peak for a fixed time, noting each send, while a
watcher polls the users view for each id. The reference is the HTTP 202 answer latency of
the same requests: the share of the latency spent before the command reached Kafka.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
import uuid
from dataclasses import dataclass

import httpx
import psycopg
import uvloop

from bench.environment import BenchEnvironment
from bench.paced_client import PacedRun, paced, request_bytes
from bench.processes import ChildProcess, Stack, gateway_token, nexus_service, with_free_ports
from bench.report import Figure, Outcome
from bench.row_watcher import RowWatcher
from bench.wrk import WrkResult, post_script, run_wrk
from infra.settings import Settings
from projections.migrations import migrate
from streams.topics import ensure_topics

NAME = "latency"
TARGET_P99_MS = 100.0
LOAD_SHARE = 0.5
PEAK_SECONDS = 10
PACED_SECONDS = 20
DRAIN_TIMEOUT = 120.0
TAIL_TIMEOUT = 30.0
WARMUP_COMMANDS = 20
PATH = "/api/v1/users"


def percentile(values: list[float], share: float) -> float:
    """Nearest-rank percentile of `values` (NaN when empty)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(share * len(ordered)) - 1))]


def warm_up(gateway: ChildProcess, token: str) -> None:
    """Commands that wait for their outcome: the whole pipeline has run once afterwards."""
    headers = {"Authorization": f"Bearer {token}", "Prefer": "wait=15"}
    with httpx.Client(base_url=gateway.url, headers=headers, timeout=30) as client:
        for n in range(WARMUP_COMMANDS):
            body = {"email": f"warm{n}@example.com", "name": "Warm"}
            answer = client.post(PATH, json=body)
            if answer.status_code != 201:
                raise RuntimeError(f"warm-up command answered {answer.status_code}: {answer.text}")


def user_count(database_url: str) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT count(*) FROM users").fetchone()
    return int(row[0]) if row else 0


def peak_and_drain(settings: Settings, gateway: ChildProcess, token: str) -> tuple[WrkResult, float]:
    """wrk's accepted/s, and users projected per second from wrk's start to the last row."""
    body = json.dumps({"email": "peak@example.com", "name": "Peak"})
    script = post_script(body, token)
    started = time.monotonic()
    peak = run_wrk(gateway.url + PATH, script, PEAK_SECONDS)
    script.unlink()
    expected = WARMUP_COMMANDS + peak.accepted
    deadline = time.monotonic() + DRAIN_TIMEOUT
    while (count := user_count(settings.resolved_database_url)) < expected:
        if time.monotonic() > deadline:
            break
        time.sleep(0.1)
    drained = (count - WARMUP_COMMANDS) / (time.monotonic() - started)
    return peak, drained


@dataclass(frozen=True)
class Sightings:
    """When each request's row appeared (by request index), and how the watch went."""

    seen: dict[int, float]
    polls: int
    drained: bool


def paced_run(settings: Settings, token: str, rate: float) -> tuple[PacedRun, Sightings]:
    """Send at `rate` for PACED_SECONDS while the watcher notes when each row appears."""
    prefix = f"lat-{uuid.uuid4().hex[:8]}-"
    host = f"127.0.0.1:{settings.gateway_port}"

    def request(index: int) -> bytes:
        body = {"user_id": f"{prefix}{index}", "email": f"u{index}@example.com", "name": "Lat"}
        return request_bytes(host, PATH, token, json.dumps(body).encode())

    watcher = RowWatcher(settings.resolved_database_url)
    watcher.start()
    total = int(rate * PACED_SECONDS)
    lanes = min(256, max(16, math.ceil(rate * 0.1)))

    def expect(index: int) -> None:
        watcher.expect(f"{prefix}{index}")

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        result = runner.run(paced(settings.gateway_port, rate, total, request, expect, lanes))
    drained = watcher.wait_drained(TAIL_TIMEOUT)
    watcher.stop()
    if watcher.error is not None:
        raise RuntimeError(f"row watcher failed: {watcher.error!r}")
    seen = {int(user.removeprefix(prefix)): at for user, at in watcher.seen.items()}
    return result, Sightings(seen, watcher.polls, drained)


def run(env: BenchEnvironment) -> Outcome:
    settings = with_free_ports(env.settings(NAME))
    ensure_topics(settings)
    migrate(settings.resolved_database_url)
    names = ("command-processor", "projector", "gateway")
    services = [nexus_service(name, settings) for name in names]
    token = gateway_token(settings)
    with Stack(services):
        warm_up(services[-1], token)
        peak, drain_rate = peak_and_drain(settings, services[-1], token)
        rate = peak.accepted_per_second * LOAD_SHARE
        result, sightings = paced_run(settings, token, rate)
    return outcome(peak, drain_rate, result, sightings)


def outcome(peak: WrkResult, drain_rate: float, result: PacedRun, watch: Sightings) -> Outcome:
    accepted = [r for r in result.requests if r.status == 202]
    seen = watch.seen
    to_row = [(seen[r.index] - r.sent) * 1000 for r in accepted if r.index in seen]
    to_202 = [(r.answered - r.sent) * 1000 for r in accepted]
    lag = [(r.sent - r.due) * 1000 for r in result.requests]
    p50, p99 = percentile(to_row, 0.5), percentile(to_row, 0.99)
    missing = len(accepted) - len(to_row)
    figures = [
        Figure("cmd->projection p50", "ms", p50, percentile(to_202, 0.5), "HTTP 202 p50"),
        Figure(
            "cmd->projection p99", "ms", p99, percentile(to_202, 0.99), "HTTP 202 p99",
            f"<= {TARGET_P99_MS:.0f} ms", p99 <= TARGET_P99_MS and missing == 0,
        ),
    ]  # fmt: skip
    notes = [
        f"peak with the whole stack up: {peak.accepted_per_second:,.0f} accepted/s (wrk "
        f"{PEAK_SECONDS} s); projected end to end: {drain_rate:,.0f} users/s",
        f"offered {result.rate:,.0f}/s ({LOAD_SHARE:.0%} of peak) for {PACED_SECONDS} s over "
        f"{result.lanes} connections; achieved {result.achieved_rate:,.0f}/s, "
        f"client send lag p99 {percentile(lag, 0.99):.1f} ms",
        f"{len(accepted):,} of {len(result.requests):,} answered 202; {len(to_row):,} rows "
        f"seen, max {max(to_row, default=math.nan):,.0f} ms; watcher polled {watch.polls:,}x",
    ]
    if result.achieved_rate < 0.95 * result.rate:
        notes.append(
            f"the Python client could not keep {result.rate:,.0f}/s; the latency figures "
            f"are at the achieved {result.achieved_rate:,.0f}/s"
        )
    if drain_rate < result.rate:
        notes.append("the stack drains slower than the offered rate: latency grows with backlog")
    if missing or not watch.drained:
        notes.append(f"{missing:,} accepted commands never showed up within {TAIL_TIMEOUT:.0f} s")
    details = {
        "peak": peak.__dict__ | {"accepted_per_second": peak.accepted_per_second},
        "drain_rate": drain_rate,
        "offered_rate": result.rate,
        "achieved_rate": result.achieved_rate,
        "lanes": result.lanes,
        "to_row_ms": {"p50": p50, "p90": percentile(to_row, 0.9), "p99": p99,
                      "max": max(to_row, default=None)},
        "to_202_ms": {"p50": percentile(to_202, 0.5), "p99": percentile(to_202, 0.99)},
        "send_lag_ms_p99": percentile(lag, 0.99),
        "missing_rows": missing,
    }  # fmt: skip
    return Outcome(NAME, figures, notes, details)
