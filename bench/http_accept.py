"""Figure 1: HTTP commands accepted per second, against a bare Starlette endpoint.

wrk POSTs RegisterUser bodies (no Prefer wait, so the gateway answers 202 once Kafka has
the command) to the gateway and, the same way, to bench/bare_app.py. Runs alternate
reference/nexus twice and keep each side's best, as the machine is noisy. Afterwards the
commands topic must hold at least as many commands as wrk counted 202 answers.

A second gateway with NEXUS_RATE_LIMIT_ENABLED=false runs beside it, measured in the same
rounds: the ratio of the two is what the rate limiter costs. The limited gateway's budget is
set far above what wrk can send, so the figure is the cost of counting, not of refusing.
A third exports every span with OTLP/HTTP (to bench/otlp_sink.py): the ratio to the first,
which exports nothing (the default), is what tracing costs when it is on.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.cpu import CpuMeter, describe
from bench.environment import BenchEnvironment
from bench.kafka_log import message_count
from bench.otlp_sink import otlp_sink
from bench.processes import (
    Stack,
    bare_app,
    gateway_token,
    nexus_service,
)
from bench.report import Figure, Outcome
from bench.wrk import WrkResult, ensure_wrk, post_script, run_wrk
from infra.config.settings import Settings
from infra.local.child_process import ChildProcess
from infra.local.processes import free_port
from infra.local.service_env import with_free_ports
from streams.kafka.topics import ensure_topics

NAME = "http"
TARGET_RATIO = 0.5  # of bare Starlette (issue 13)
LIMITER_RATIO = 0.9  # what counting may cost
WARMUP_SECONDS = 3
RUN_SECONDS = 10
ROUNDS = 2
CONNECTIONS = 64
BODY = '{"email": "bench@example.com", "name": "Bench User", "locale": "en"}'
PATH = "/api/v1/users"
LIMITED = {"rate_limit_commands": "1000000/second"}  # on, and never reached by one subject
TRACED_RATIO = 0.7  # what recording and exporting every span may cost


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
    settings = with_free_ports(env.settings(NAME)).model_copy(update=LIMITED)
    ensure_topics(settings)
    gateway = nexus_service("gateway", settings)
    off = with_free_ports(settings).model_copy(update={"rate_limit_enabled": False})
    unlimited = nexus_service("gateway", off, label="gateway-unlimited")
    bare = bare_app(free_port(), settings.home / "bare-starlette.log")
    runs: dict[str, list[Run]] = {side: [] for side in ("nexus", "unlimited", "traced", "bare")}
    runs["warmup"] = []
    with otlp_sink() as (spans, endpoint):
        exporting = {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint}
        traced = nexus_service("gateway", with_free_ports(settings), "gateway-traced", exporting)
        servers = {"bare": bare, "nexus": gateway, "unlimited": unlimited, "traced": traced}
        _measure(servers, env, runs, settings)
        exported = f"{spans.requests:,} OTLP exports, {spans.bytes / 1e6:,.1f} MB"
    in_topic = message_count(settings, settings.topic("commands"))
    return outcome(runs, in_topic, exported)


def _measure(
    servers: dict[str, ChildProcess],
    env: BenchEnvironment,
    runs: dict[str, list[Run]],
    settings: Settings,
) -> None:
    with Stack(list(servers.values())), post_script(BODY, gateway_token(settings)) as script:
        for server in servers.values():
            runs["warmup"].append(measured(server, env, script, WARMUP_SECONDS))
        for _ in range(ROUNDS):
            for side, server in servers.items():
                runs[side].append(measured(server, env, script, RUN_SECONDS))


def outcome(runs: dict[str, list[Run]], in_topic: int, exported: str) -> Outcome:
    nexus, bare, unlimited, traced = (
        _best(runs[side]) for side in ("nexus", "bare", "unlimited", "traced")
    )
    # The gateways' warmup runs (all but the first) wrote commands too.
    gateways = [*runs["nexus"], *runs["unlimited"], *runs["traced"], *runs["warmup"][1:]]
    accepted = sum(r.wrk.accepted for r in gateways)
    rate, reference = nexus.wrk.accepted_per_second, bare.wrk.accepted_per_second
    figure = Figure(
        "HTTP 202 accepted/s", "/s", rate, reference, "bare Starlette",
        f">= {TARGET_RATIO:.0%} of bare", rate >= TARGET_RATIO * reference,
    )  # fmt: skip
    off = unlimited.wrk.accepted_per_second
    limiter = Figure("HTTP 202/s, rate limits on", "/s", rate, off, "same gateway, limits off",
                     f">= {LIMITER_RATIO:.0%} of off", rate >= LIMITER_RATIO * off)  # fmt: skip
    spans = traced.wrk.accepted_per_second
    tracing = Figure("HTTP 202/s, spans exported", "/s", spans, rate, "same gateway, no export",
                     f">= {TRACED_RATIO:.0%} of it", spans >= TRACED_RATIO * rate)  # fmt: skip
    # wrk stops with up to CONNECTIONS requests in flight per run: answered, never counted.
    verdict = "ok" if in_topic >= accepted else "MISSING COMMANDS"
    notes = [
        f"runs: nexus {_rates(runs['nexus'])}; limits off {_rates(runs['unlimited'])}; "
        f"spans exported {_rates(runs['traced'])} ({exported}); "
        f"bare {_rates(runs['bare'])} "
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
    return Outcome(NAME, [figure, limiter, tracing], notes, details)


def _best(runs: list[Run]) -> Run:
    return max(runs, key=lambda r: r.wrk.accepted_per_second)


def _rates(runs: list[Run]) -> str:
    return ", ".join(f"{r.wrk.accepted_per_second:,.0f}/s" for r in runs)
