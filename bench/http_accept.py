"""Figure 1: HTTP commands accepted per second, against a bare Starlette endpoint.

wrk POSTs RegisterUser bodies (no Prefer wait, so the gateway answers 202 once Kafka has
the command) to the gateway and, the same way, to bench/bare_app.py. Runs alternate
reference/nexus twice and keep each side's best, as the machine is noisy. Afterwards the
commands topic must hold at least as many commands as wrk counted 202 answers.
"""

from __future__ import annotations

from bench.environment import BenchEnvironment
from bench.kafka_log import message_count
from bench.processes import Stack, bare_app, gateway_token, nexus_service, with_free_ports
from bench.report import Figure, Outcome
from bench.wrk import WrkResult, ensure_wrk, post_script, run_wrk
from infra.processes import free_port
from streams.topics import ensure_topics

NAME = "http"
TARGET = 3_000.0
WARMUP_SECONDS = 3
RUN_SECONDS = 10
ROUNDS = 2
BODY = '{"email": "bench@example.com", "name": "Bench User", "locale": "en"}'
PATH = "/api/v1/users"


def run(env: BenchEnvironment) -> Outcome:
    ensure_wrk()
    settings = with_free_ports(env.settings(NAME))
    ensure_topics(settings)
    gateway = nexus_service("gateway", settings)
    bare = bare_app(free_port(), settings.home / "bare-starlette.log")
    script = post_script(BODY, gateway_token(settings))
    runs: dict[str, list[WrkResult]] = {"nexus": [], "bare": [], "warmup": []}
    with Stack([gateway, bare]):
        for url in (bare.url, gateway.url):
            runs["warmup"].append(run_wrk(url + PATH, script, WARMUP_SECONDS))
        for _ in range(ROUNDS):
            runs["bare"].append(run_wrk(bare.url + PATH, script, RUN_SECONDS))
            runs["nexus"].append(run_wrk(gateway.url + PATH, script, RUN_SECONDS))
    script.unlink()
    in_topic = message_count(settings, settings.topic("commands"))
    return outcome(runs, in_topic)


def outcome(runs: dict[str, list[WrkResult]], in_topic: int) -> Outcome:
    nexus = max(runs["nexus"], key=lambda r: r.accepted_per_second)
    bare = max(runs["bare"], key=lambda r: r.accepted_per_second)
    # The gateway's warmup run (the second one) wrote commands too.
    accepted = sum(r.accepted for r in runs["nexus"]) + runs["warmup"][1].accepted
    figure = Figure(
        "HTTP 202 accepted/s", "/s", nexus.accepted_per_second, bare.accepted_per_second,
        "bare Starlette", f">= {TARGET:,.0f}/s", nexus.accepted_per_second >= TARGET,
    )  # fmt: skip
    verdict = "ok" if in_topic >= accepted else "MISSING COMMANDS"
    notes = [
        f"nexus runs: {_rates(runs['nexus'])}; bare runs: {_rates(runs['bare'])} "
        f"(wrk -t1 -c64, {RUN_SECONDS} s each, best kept)",
        f"HTTP latency at saturation, best runs: nexus p50 {nexus.p50_ms:.1f} ms "
        f"p99 {nexus.p99_ms:.1f} ms; bare p50 {bare.p50_ms:.1f} ms p99 {bare.p99_ms:.1f} ms",
        f"commands topic holds {in_topic:,} commands; wrk counted {accepted:,} x 202 "
        f"({verdict})",
    ]
    other = sum(r.other + r.socket_errors + r.timeouts for rs in runs.values() for r in rs)
    if other:
        notes.append(f"{other:,} non-202 answers, socket errors or timeouts in all runs")
    details = {
        side: [r.__dict__ | {"accepted_per_second": r.accepted_per_second} for r in rs]
        for side, rs in runs.items()
    }
    details["commands_in_topic"] = in_topic
    details["accepted_total"] = accepted
    return Outcome(NAME, [figure], notes, details)


def _rates(results: list[WrkResult]) -> str:
    return ", ".join(f"{r.accepted_per_second:,.0f}/s" for r in results)
