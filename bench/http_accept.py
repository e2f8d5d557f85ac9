"""Figure 1: HTTP commands accepted per second, against a bare Starlette endpoint.

wrk POSTs RegisterUser bodies (no Prefer wait, so the gateway answers 202 once Kafka has
the command) to the gateway and, the same way, to bench/bare_app.py. Runs alternate
reference/nexus twice and keep each side's best, as the machine is noisy. Afterwards the
commands topic must hold at least as many commands as wrk counted 202 answers.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.cpu import CpuMeter, describe
from bench.environment import BenchEnvironment
from bench.kafka_log import message_count
from bench.processes import (
    ChildProcess,
    Stack,
    bare_app,
    gateway_token,
    nexus_service,
)
from bench.report import Figure, Outcome
from bench.wrk import WrkResult, ensure_wrk, post_script, run_wrk
from infra.processes import free_port
from infra.service_env import with_free_ports
from streams.topics import ensure_topics

NAME = "http"
TARGET = 3_000.0
WARMUP_SECONDS = 3
RUN_SECONDS = 10
ROUNDS = 2
CONNECTIONS = 64
BODY = '{"email": "bench@example.com", "name": "Bench User", "locale": "en"}'
PATH = "/api/v1/users"


@dataclass(frozen=True)
class Run:
    """One wrk run and the share of a core each process used meanwhile."""

    wrk: WrkResult
    cpu: dict[str, float]

    def as_json(self) -> dict[str, Any]:
        return self.wrk.__dict__ | {"per_second": self.wrk.accepted_per_second, "cpu": self.cpu}


def measured(server: ChildProcess, env: BenchEnvironment, script: Path, seconds: float) -> Run:
    assert env.kafka is not None
    meter = CpuMeter({server.name: server.pid, "kafka": env.kafka.pid()}).start()
    result = run_wrk(server.url + PATH, script, seconds, connections=CONNECTIONS)
    return Run(result, meter.shares())


def run(env: BenchEnvironment) -> Outcome:
    ensure_wrk()
    settings = with_free_ports(env.settings(NAME))
    ensure_topics(settings)
    gateway = nexus_service("gateway", settings)
    bare = bare_app(free_port(), settings.home / "bare-starlette.log")
    runs: dict[str, list[Run]] = {"nexus": [], "bare": [], "warmup": []}
    with Stack([gateway, bare]), post_script(BODY, gateway_token(settings)) as script:
        for server in (bare, gateway):
            runs["warmup"].append(measured(server, env, script, WARMUP_SECONDS))
        for _ in range(ROUNDS):
            runs["bare"].append(measured(bare, env, script, RUN_SECONDS))
            runs["nexus"].append(measured(gateway, env, script, RUN_SECONDS))
    in_topic = message_count(settings, settings.topic("commands"))
    return outcome(runs, in_topic)


def outcome(runs: dict[str, list[Run]], in_topic: int) -> Outcome:
    nexus = max(runs["nexus"], key=lambda r: r.wrk.accepted_per_second)
    bare = max(runs["bare"], key=lambda r: r.wrk.accepted_per_second)
    # The gateway's warmup run (the second one) wrote commands too.
    accepted = sum(r.wrk.accepted for r in runs["nexus"]) + runs["warmup"][1].wrk.accepted
    rate, reference = nexus.wrk.accepted_per_second, bare.wrk.accepted_per_second
    figure = Figure(
        "HTTP 202 accepted/s", "/s", rate, reference, "bare Starlette",
        f">= {TARGET:,.0f}/s", rate >= TARGET,
    )  # fmt: skip
    # wrk stops with up to CONNECTIONS requests in flight per run: answered, never counted.
    verdict = "ok" if in_topic >= accepted else "MISSING COMMANDS"
    notes = [
        f"runs: nexus {_rates(runs['nexus'])}; bare {_rates(runs['bare'])} "
        f"(wrk -t1 -c{CONNECTIONS}, {RUN_SECONDS} s each, best kept)",
        f"latency at saturation: nexus p50 {nexus.wrk.p50_ms:.1f} ms p99 {nexus.wrk.p99_ms:.1f} ms"
        f"; bare p50 {bare.wrk.p50_ms:.1f} ms p99 {bare.wrk.p99_ms:.1f} ms",
        f"CPU (share of one core) in the best runs: {describe(nexus.cpu)}; {describe(bare.cpu)}",
        f"commands topic holds {in_topic:,} commands; wrk counted {accepted:,} x 202 ({verdict};"
        f" wrk does not count the up to {CONNECTIONS} answers in flight when each run stops)",
    ]
    other = sum(
        r.wrk.other + r.wrk.socket_errors + r.wrk.timeouts for rs in runs.values() for r in rs
    )
    if other:
        notes.append(f"{other:,} non-202 answers, socket errors or timeouts in all runs")
    details: dict[str, Any] = {side: [r.as_json() for r in rs] for side, rs in runs.items()}
    details |= {"commands_in_topic": in_topic, "accepted_total": accepted}
    return Outcome(NAME, [figure], notes, details)


def _rates(runs: list[Run]) -> str:
    return ", ".join(f"{r.wrk.accepted_per_second:,.0f}/s" for r in runs)
