"""`nexus up` with NEXUS_SCALE running two instances of every service, as real processes on the
session's Kafka and PostgreSQL; `nexus status` shows each instance's own pid, a killed one
comes back under its supervisor, and `nexus down` leaves no process behind."""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from deadline import Deadline
from stack import NEXUS

from infra.config.scale import SERVICES
from infra.config.settings import Settings
from infra.local.processes import command_line, free_port, is_alive

SCALE = ",".join(f"{service}=2" for service in SERVICES)
INSTANCES = [name for service in SERVICES for name in (service, f"{service}-2")]
BUDGET_S = 400  # every wait of the test together (deadline.py); each was once its own
DOWN_S = 180


def bindable(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def instance_ports() -> dict[str, str]:
    """Base ports (NEXUS_*_PORT) whose every instance port is free: the workers' bases one
    apart, instances ten apart (infra/config/scale.py)."""
    while True:
        base = random.randrange(20000, 32000, 100)
        workers = [base + 10 * n + k for n in range(2) for k in range(1, 6)]
        if all(bindable(port) for port in [*workers, base, base + 10, base + 20]):
            break
    fields = ["COMMAND_PROCESSOR", "PROJECTOR", "NOTIFIER", "WORKFLOWS", "ANALYTICS"]
    env = {f"NEXUS_{field}_HEALTH_PORT": str(base + k) for k, field in enumerate(fields, 1)}
    return {**env, "NEXUS_GATEWAY_PORT": str(base), "NEXUS_PROMETHEUS_PORT": str(free_port())}


def nexus(env: dict[str, str], *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([NEXUS, *args], env=env, capture_output=True, text=True, timeout=timeout)


def status_rows(env: dict[str, str]) -> tuple[int, dict[str, tuple[str, int | None]]]:
    """`nexus status`'s exit code and {instance: (state, pid)}."""
    result = nexus(env, "status")
    rows = {}
    for line in result.stdout.splitlines()[1:]:
        name, rest = line.split(None, 1)
        state = "not ready" if rest.startswith("not ready") else rest.split()[0]
        pid = rest.removeprefix(state).split()[0]
        rows[name] = (state, int(pid) if pid.isdigit() else None)
    return result.returncode, rows


def wait_restarted(env: dict[str, str], name: str, killed: int, timeout: float = 90) -> None:
    """Until status shows `name` with a new pid and every service serving again."""
    deadline = time.monotonic() + timeout
    while True:
        code, rows = status_rows(env)
        if code == 0 and rows[name][1] not in (None, killed):
            return
        assert time.monotonic() < deadline, f"{name} not back after {timeout}s: {rows}"
        time.sleep(1)


@pytest.fixture
def stack_env(settings: Settings) -> Iterator[dict[str, str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEXUS_")}
    env.update(
        NEXUS_HOME=str(settings.home),
        NEXUS_KAFKA_BOOTSTRAP=settings.resolved_kafka_bootstrap,
        NEXUS_DATABASE_URL=settings.resolved_database_url,
        NEXUS_TOPIC_PREFIX=settings.topic_prefix,
        NEXUS_JWT_SECRET=settings.resolved_jwt_secret(),
        NEXUS_SCALE=SCALE,
        NEXUS_LOG_LEVEL="warning",
        **instance_ports(),
    )
    yield env
    nexus(env, "down", timeout=DOWN_S)


@pytest.mark.fault
@pytest.mark.timeout(BUDGET_S + DOWN_S + 10)  # and the fixture's `nexus down`
def test_up_runs_two_of_everything_that_heal_and_down_stops_them_all(
    stack_env: dict[str, str],
) -> None:
    deadline = Deadline(BUDGET_S)
    up = nexus(stack_env, "up", timeout=deadline.left(400, "nexus up"))
    assert up.returncode == 0, up.stdout + up.stderr
    code, rows = status_rows(stack_env)
    assert list(rows) == ["kafka", "postgres", "prometheus", *INSTANCES]  # the first two external
    assert code == 0, rows
    pids = {name: pid for name, (_, pid) in rows.items() if pid is not None}
    for name in INSTANCES:  # the service's own pid, not its supervisor's
        service = name.removesuffix("-2")
        assert command_line(pids[name])[-2:] == ["run", service], name
    assert len({pids[name] for name in INSTANCES}) == len(INSTANCES)
    supervisors = [int(p.read_text()) for p in Path(stack_env["NEXUS_HOME"], "run").glob("*.pid")]

    os.kill(pids["command-processor-2"], signal.SIGKILL)

    back_within = deadline.left(90, "the killed instance back")
    wait_restarted(stack_env, "command-processor-2", pids["command-processor-2"], back_within)
    gateway = f"http://127.0.0.1:{stack_env['NEXUS_GATEWAY_PORT']}/readyz"
    assert httpx.get(gateway, timeout=5).status_code == 200
    logs = nexus(stack_env, "logs", "projector", "-n", "1")
    assert logs.stdout.count("==> ") == 2  # one header per instance's log file

    # Scaling down: `up` stops the instance beyond the new count and leaves the rest running.
    fewer = {**stack_env, "NEXUS_SCALE": SCALE.replace("notifier=2", "notifier=1")}
    again = nexus(fewer, "up", timeout=deadline.left(400, "nexus up, scaled down"))
    assert again.returncode == 0, again.stdout + again.stderr
    assert "notifier-2         stopped (beyond NEXUS_SCALE)" in again.stdout
    assert again.stdout.count("already running") == len(INSTANCES)  # Prometheus, less one
    assert "notifier-2" not in status_rows(fewer)[1]

    down = nexus(stack_env, "down", timeout=deadline.left(DOWN_S, "nexus down"))

    assert down.returncode == 0, down.stderr
    survivors = [pid for pid in [*supervisors, *pids.values()] if is_alive(pid)]
    assert survivors == []
    code, rows = status_rows(stack_env)
    assert code == 3
    assert {rows[name][0] for name in INSTANCES} == {"down"}
