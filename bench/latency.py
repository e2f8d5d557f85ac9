"""Figure 3: command -> projection latency p50/p99 at half of peak load.

With the command processor, projector and gateway running, wrk first finds the gateway's
peak accepted/s (and the stack's end-to-end drain rate). Then an open-loop client sends
RegisterUser commands at half that peak for a fixed time, noting each send, while a
watcher polls the users view for each id. bench/latency_analysis.py turns that into figures.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import time
import uuid

import httpx
import psycopg
import uvloop

from bench.cpu import CpuMeter
from bench.environment import BenchEnvironment
from bench.latency_analysis import BatchTimes, Peak, Sightings, Stages, outcome
from bench.paced_client import PacedRun, paced, request_bytes
from bench.processes import Stack, gateway_token, nexus_service
from bench.report import Outcome, say
from bench.row_watcher import RowWatcher
from bench.service_metrics import histogram
from bench.wrk import post_script, run_wrk
from infra.config.scale import ServiceName
from infra.config.settings import Settings
from infra.local.child_process import ChildProcess
from infra.local.service_env import with_free_ports
from projections.migrations import migrate
from streams.kafka.topics import ensure_topics

NAME = "latency"
LOAD_SHARE = 0.5
LIGHT_RATE = 100.0  # a second, light run shows the latency the pipeline has when not queueing
PEAK_SECONDS = 10
PACED_SECONDS = 20
DRAIN_TIMEOUT = 120.0
TAIL_TIMEOUT = 30.0
WARMUP_COMMANDS = 20
PATH = "/api/v1/users"
# Seconds of answer time a connection may take before its next send falls behind schedule.
LANE_BUDGET = 0.3
PROCESSOR_BATCH = "nexus_command_batch_seconds"
PROJECTOR_BATCH = "nexus_projection_batch_seconds"


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


def peak_and_drain(settings: Settings, gateway: ChildProcess, token: str) -> Peak:
    """wrk's accepted/s, and users projected per second from wrk's start to the last row."""
    started = time.monotonic()
    with post_script(json.dumps({"email": "peak@example.com", "name": "Peak"}), token) as script:
        wrk = run_wrk(gateway.url + PATH, script, PEAK_SECONDS)
    expected = WARMUP_COMMANDS + wrk.accepted
    deadline = time.monotonic() + DRAIN_TIMEOUT
    while (count := user_count(settings.resolved_database_url)) < expected:
        if time.monotonic() > deadline:
            break
        time.sleep(0.1)
    return Peak(wrk, (count - WARMUP_COMMANDS) / (time.monotonic() - started))


def paced_run(settings: Settings, token: str, rate: float) -> tuple[PacedRun, Sightings]:
    """Send at `rate` for PACED_SECONDS while the watcher notes when each row appears."""
    prefix = f"lat-{uuid.uuid4().hex[:8]}-"
    host = f"127.0.0.1:{settings.gateway_port}"

    def request(index: int) -> bytes:
        body = {"user_id": f"{prefix}{index}", "email": f"u{index}@example.com", "name": "Lat"}
        return request_bytes(host, PATH, token, json.dumps(body).encode())

    def expect(index: int) -> None:
        watcher.expect(f"{prefix}{index}")

    watcher = RowWatcher(settings.resolved_database_url)
    watcher.start()
    total, lanes = int(rate * PACED_SECONDS), min(512, max(16, math.ceil(rate * LANE_BUDGET)))
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        result = runner.run(paced(settings.gateway_port, rate, total, request, expect, lanes))
    drained = watcher.wait_drained(TAIL_TIMEOUT)
    watcher.stop()
    if watcher.error is not None:
        raise RuntimeError(f"row watcher failed: {watcher.error!r}")
    seen = {int(user.removeprefix(prefix)): at for user, at in watcher.seen.items()}
    decided = {
        int(user.removeprefix(prefix)): at.timestamp() for user, at in watcher.decided.items()
    }
    return result, Sightings(seen, decided, watcher.polls, drained)


def stage_times(settings: Settings) -> BatchTimes:
    """The batch histograms of the command processor and projector, as of now."""
    processor = f"http://127.0.0.1:{settings.command_processor_health_port}"
    projector = f"http://127.0.0.1:{settings.projector_health_port}"
    return BatchTimes(histogram(processor, PROCESSOR_BATCH), histogram(projector, PROJECTOR_BATCH))


def run(env: BenchEnvironment) -> Outcome:
    settings = with_free_ports(env.settings(NAME))
    ensure_topics(settings)
    migrate(settings.resolved_database_url)
    names: tuple[ServiceName, ...] = ("command-processor", "projector", "gateway")
    services = [nexus_service(name, settings) for name in names]
    token = gateway_token(settings)
    with Stack(services):
        warm_up(services[-1], token)
        peak = peak_and_drain(settings, services[-1], token)
        rate = peak.wrk.accepted_per_second * LOAD_SHARE
        say(f"{NAME}: peak {peak.wrk.accepted_per_second:,.0f}/s, drained {peak.drain_rate:,.0f}/s;"
            f" pacing at {rate:,.0f}/s for {PACED_SECONDS} s")  # fmt: skip
        before, meter = stage_times(settings), cpu_meter(env, services).start()
        result, sightings = paced_run(settings, token, rate)
        stages = Stages(stage_times(settings) - before, meter.shares())
        say(f"{NAME}: pacing at {LIGHT_RATE:,.0f}/s for {PACED_SECONDS} s")
        light = paced_run(settings, token, LIGHT_RATE)
    return outcome(NAME, peak, result, sightings, stages, light)


def cpu_meter(env: BenchEnvironment, services: list[ChildProcess]) -> CpuMeter:
    assert env.kafka is not None
    pids: dict[str, int | None] = {s.name: s.pid for s in services}
    return CpuMeter(pids | {"kafka": env.kafka.pid(), "bench client": os.getpid()})
