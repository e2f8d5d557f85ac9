"""The Prometheus `nexus up` runs, on its own (no Nexus process behind its targets): it serves
on 127.0.0.1, reloads a configuration that changed while it runs, comes back under its
supervisor when killed, and `stop` leaves nothing running."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from infra.config.settings import Settings
from infra.local.processes import command_line, free_port, is_alive
from infra.local.prometheus_server import PrometheusServer
from infra.local.services import prometheus_server
from infra.local.supervise import supervised_child

READY_S = 60.0


@pytest.fixture
def started(tmp_path: Path) -> Iterator[Callable[[str], PrometheusServer]]:
    """Starts Prometheus for settings with `scale`, home and port fixed per test."""
    servers: list[PrometheusServer] = []
    port = free_port()

    def start(scale: str) -> PrometheusServer:
        server = prometheus_server(Settings(home=tmp_path, prometheus_port=port, scale=scale))
        server.start()
        server.wait_ready(READY_S)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop(20)


def instances(server: PrometheusServer) -> set[str]:
    answer = httpx.get(f"{server.url}/api/v1/targets", timeout=5).json()
    return {target["labels"]["instance"] for target in answer["data"]["activeTargets"]}


def until(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not so after {timeout}s"
        time.sleep(0.2)


def test_a_changed_configuration_is_reloaded_by_the_running_server(
    started: Callable[[str], PrometheusServer],
) -> None:
    first = started("")
    pid = first.pid()
    until(lambda: "projector" in instances(first))
    assert "projector-2" not in instances(first)

    again = started("projector=2")

    assert again.pid() == pid  # not restarted: reloaded
    until(lambda: {"projector", "projector-2"} <= instances(again))


@pytest.mark.fault
@pytest.mark.timeout(240)  # its waits: start 60 s, back 30 s + 60 s, stop 20 s
def test_a_killed_server_comes_back_and_stop_ends_it(
    started: Callable[[str], PrometheusServer],
) -> None:
    server = started("")
    supervisor = server.pid()
    assert supervisor is not None
    own = supervised_child(supervisor)
    assert own is not None and own != supervisor
    assert f"--web.listen-address=127.0.0.1:{server.port}" in command_line(own)

    os.kill(own, signal.SIGKILL)
    until(lambda: supervised_child(supervisor) not in (None, own))
    server.wait_ready(READY_S)

    assert server.stop(20)
    assert not is_alive(supervisor) and server.pid() is None
