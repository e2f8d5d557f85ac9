"""Fault test: the only broker SIGSTOPped for 20 s mid-stream, then resumed, and no hand
on anything afterwards.

The whole stack runs as supervised processes (`nexus run NAME --supervise`, as `make up`
runs it) against a private broker, under three steady loads at once: commands through the
gateway, notification requests for webhook users, tracked analytics events. Within
HEAL_S of the resume: every acknowledged command is decided exactly once, no event is
duplicated, versions are contiguous and the read models equal a fold of the events topic;
every notification saga ended exactly once and no attempt reached the webhook twice; the
rollups count every event exactly once; the workflow runner's group has caught up.

Before the fix this wedged the command processor for good (a fenced static member polling
on, or a rewind retried forever) and, behind it, the workflow runner, while all of them
answered /healthz and /readyz with 200.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import isolated_settings
from fault_checks import described, restarts, supervised_stack, wait_healed
from fault_loads import Loads
from stack import prepared
from webhook_sink import webhook_sink

from infra.local.kafka_server import KafkaServer

SERVICES = ("command-processor", "projector", "gateway", "workflows", "notifier", "analytics")
PAUSE_S = 20
HEAL_S = 60
# Its bounded steps at worst: the stack up (120 s), the fault and the loads (~60 s), the
# loads finished (HEAL_S) and healed (HEAL_S, then each check once more), the stack down.
TIMEOUT_S = 540
# What the fault may cost a command request (fault_http): while the broker is paused
# the gateway answers 503 log-unavailable, and nothing else.
ALLOWED: frozenset[int] = frozenset({503})
PAUSE_AFTER_S = 8
LOAD_AFTER_S = 10  # the loads go on this long after the resume


def pause(broker: KafkaServer, seconds: float) -> None:
    pid = broker.broker_pid()
    assert pid is not None, "the broker is not running"
    os.kill(pid, signal.SIGSTOP)
    try:
        time.sleep(seconds)
    finally:
        os.kill(pid, signal.SIGCONT)


@pytest.mark.fault
@pytest.mark.timeout(TIMEOUT_S)
def test_a_broker_paused_for_20s_heals_by_itself(
    kafka_server_factory: Callable[[], KafkaServer], pg_admin_url: str, tmp_path: Path
) -> None:
    broker = kafka_server_factory()
    with (
        webhook_sink() as (sink, port),
        isolated_settings(broker.bootstrap, pg_admin_url, tmp_path) as isolated,
    ):
        stack = prepared(
            isolated,
            delivery_allow_list=f"127.0.0.1:{port}",
            notification_base_delay_ms=50,
            notification_max_delay_ms=400,
        )
        with supervised_stack(stack, SERVICES, "broker-pause") as services:
            loads = Loads(stack, port, ALLOWED)
            loads.start()
            time.sleep(PAUSE_AFTER_S)
            pause(broker, PAUSE_S)
            resumed = time.monotonic()
            time.sleep(LOAD_AFTER_S)
            loads.finish(HEAL_S)
            healed, wrong = wait_healed(loads.checks(sink), resumed, HEAL_S)
            started_again = {name: restarts(service) for name, service in services.items()}
        seconds = {name: round(after) for name, after in healed.items()}
        print(f"\nbroker pause: {loads.summary()}; healed (s after the resume) {seconds};"
              f" restarts {started_again}")  # fmt: skip
        assert not wrong, described(wrong)
        assert started_again["gateway"] == 0
