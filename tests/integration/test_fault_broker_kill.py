"""Fault test: the only broker's JVM SIGKILLed mid-stream, started again by its supervisor,
and no hand on anything afterwards.

The whole stack runs as supervised processes (`nexus run NAME --supervise`, as `make up`
runs it) against a private supervised broker (as `make up` runs Kafka), under the broker
pause's three loads: commands through the gateway, notification requests for webhook users,
tracked analytics events. The JVM is SIGKILLed, as a crash or the OOM killer would; its
supervisor must start a new one (the supervisor itself stays). Nothing acknowledged may be
lost: a killed process leaves its writes in the page cache, and the broker recovers its logs
on start. Within HEAL_S of the broker serving again: every acknowledged command is decided
exactly once, no event is duplicated, versions are contiguous and the read models equal a
fold of the events topic; every notification saga ended exactly once and no attempt reached
the webhook twice; the rollups count every event exactly once; the workflow runner's group
has caught up.
"""

from __future__ import annotations

import os
import shutil
import signal
import time
from pathlib import Path

import pytest
from conftest import ARTIFACTS, KafkaClusterFactory, isolated_settings
from fault_checks import described, restarts, supervised_stack, wait_healed
from fault_loads import Loads
from stack import prepared
from test_kafka_supervision import wait_for_new_jvm
from webhook_sink import webhook_sink

from infra.local.processes import is_alive

SERVICES = ("command-processor", "projector", "gateway", "workflows", "notifier", "analytics")
HEAL_S = 60
# Its bounded steps at worst: the stack up (120 s), the fault and the loads (~60 s), the
# loads finished (HEAL_S) and healed (HEAL_S, then each check once more), the stack down.
TIMEOUT_S = 540
# What the fault may cost a command request (fault_http): while the broker is down
# the gateway answers 503 log-unavailable, and nothing else.
ALLOWED: frozenset[int] = frozenset({503})
KILL_AFTER_S = 8
LOAD_AFTER_S = 5  # the loads go on this long after the broker serves again
BACK_WITHIN_S = 60  # the supervisor's backoff (1 s), then a JVM start with log recovery
LOGS = "broker-kill"


@pytest.mark.fault
@pytest.mark.timeout(TIMEOUT_S)
def test_a_sigkilled_broker_restarted_by_its_supervisor_heals_by_itself(
    kafka_cluster_factory: KafkaClusterFactory, pg_admin_url: str, tmp_path: Path
) -> None:
    cluster = kafka_cluster_factory(1, supervised=True)
    (broker,) = cluster.nodes
    try:
        with (
            webhook_sink() as (sink, port),
            isolated_settings(cluster.bootstrap, pg_admin_url, tmp_path) as isolated,
        ):
            stack = prepared(
                isolated,
                delivery_allow_list=f"127.0.0.1:{port}",
                notification_base_delay_ms=50,
                notification_max_delay_ms=400,
            )
            with supervised_stack(stack, SERVICES, LOGS) as services:
                loads = Loads(stack, port, ALLOWED)
                loads.start()
                time.sleep(KILL_AFTER_S)
                supervisor, jvm = broker.pid(), broker.broker_pid()
                assert supervisor is not None and jvm is not None and jvm != supervisor
                os.kill(jvm, signal.SIGKILL)
                killed = time.monotonic()
                new_jvm = wait_for_new_jvm(broker, jvm, BACK_WITHIN_S)
                cluster.wait_ready(timeout=max(1.0, BACK_WITHIN_S - (time.monotonic() - killed)))
                back = time.monotonic()
                time.sleep(LOAD_AFTER_S)
                loads.finish(HEAL_S)
                healed, wrong = wait_healed(loads.checks(sink), back, HEAL_S)
                started_again = {name: restarts(service) for name, service in services.items()}
    finally:  # supervised_stack made the folder afresh; the broker's log joins the services'
        if broker.log_file.exists():
            (ARTIFACTS / LOGS).mkdir(parents=True, exist_ok=True)
            shutil.copyfile(broker.log_file, ARTIFACTS / LOGS / "kafka.log")
    seconds = {name: round(after) for name, after in healed.items()}
    print(f"\nbroker kill: JVM {jvm} -> {new_jvm}, serving {back - killed:.1f}s after the"
          f" SIGKILL; {loads.summary()}; healed (s after it served) {seconds};"
          f" restarts {started_again}")  # fmt: skip
    assert not is_alive(jvm)
    assert broker.pid() == supervisor, "the supervisor itself must stay"
    assert broker.log_file.read_text(errors="replace").count("supervise: ") == 1
    assert not wrong, described(wrong)
    assert started_again["gateway"] == 0
