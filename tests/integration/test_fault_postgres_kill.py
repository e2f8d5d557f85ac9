"""Fault test: PostgreSQL SIGKILLed mid-stream, back a few seconds later, no hand on the
services.

The whole stack runs as supervised processes against a private PostgreSQL (itself under
its supervisor, which starts it again) and the session's broker, under the same three
loads as the broker pause. The postmaster is SIGKILLed, as a crash or the OOM killer would.
Within HEAL_S of PostgreSQL answering again: the read models equal a fold of the events
topic (every acknowledged command decided exactly once), every notification saga ended
exactly once with the delivery ledger agreeing with what the webhook received (no attempt
twice), and the rollups count every event exactly once.
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

from infra.local.postgres_server import PostgresServer

SERVICES = ("command-processor", "projector", "gateway", "workflows", "notifier", "analytics")
HEAL_S = 60
# Its bounded steps at worst: the stack up (120 s), the fault and the loads (~60 s), the
# loads finished (HEAL_S) and healed (HEAL_S, then each check once more), the stack down.
TIMEOUT_S = 540
# What the kill may cost a command request (fault_http): nothing, since a command
# never touches PostgreSQL on its way to its 202 (no Prefer: wait).
ALLOWED: frozenset[int] = frozenset()
KILL_AFTER_S = 8
LOAD_AFTER_S = 10  # the loads go on this long after PostgreSQL is back
BACK_WITHIN_S = 30  # its supervisor's restart; else the test starts it


def kill_postmaster(server: PostgresServer) -> None:
    """SIGKILL the postmaster: no shutdown, no checkpoint; it recovers from the WAL."""
    pid = int((server.data_dir / "postmaster.pid").read_text().split()[0])
    os.kill(pid, signal.SIGKILL)


def wait_back(server: PostgresServer) -> None:
    """Until it answers again, started by its supervisor or, failing that, by us."""
    try:
        server.wait_ready(BACK_WITHIN_S)
    except Exception:
        server.start()


@pytest.mark.fault
@pytest.mark.timeout(TIMEOUT_S)
def test_postgres_killed_mid_stream_heals_by_itself(
    postgres_server_factory: Callable[[], PostgresServer], kafka_bootstrap: str, tmp_path: Path
) -> None:
    server = postgres_server_factory()
    with (
        webhook_sink() as (sink, port),
        isolated_settings(kafka_bootstrap, server.admin_url, tmp_path) as isolated,
    ):
        stack = prepared(
            isolated,
            delivery_allow_list=f"127.0.0.1:{port}",
            notification_base_delay_ms=50,
            notification_max_delay_ms=400,
        )
        with supervised_stack(stack, SERVICES, "postgres-kill") as services:
            loads = Loads(stack, port, ALLOWED)
            loads.start()
            time.sleep(KILL_AFTER_S)
            killed = time.monotonic()
            kill_postmaster(server)
            time.sleep(1)
            wait_back(server)
            back = time.monotonic()
            time.sleep(LOAD_AFTER_S)
            loads.finish(HEAL_S)
            healed, wrong = wait_healed(loads.checks(sink), back, HEAL_S)
            started_again = {name: restarts(service) for name, service in services.items()}
        seconds = {name: round(after) for name, after in healed.items()}
        print(f"\npostgres kill: back after {back - killed:.0f}s; {loads.summary()}; healed"
              f" (s after it was back) {seconds}; restarts {started_again}")  # fmt: skip
        assert not wrong, described(wrong)
