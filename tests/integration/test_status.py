"""What `nexus status` sees of a supervised service: its own pid, and a state from its probes.

Each service here is a real supervised process: a small HTTP server answering /healthz and
/readyz as told, or a program that answers nothing.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from infra.local.processes import free_port, is_alive
from infra.local.services import AppProcess, Service
from infra.local.status import Observed, all_serving, observe
from infra.local.supervise import supervised_argv

HEALTH_SERVER = """
import http.server, sys
port, ready = int(sys.argv[1]), sys.argv[2] == "ready"
class Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        codes = {"/healthz": 200, "/readyz": 200 if ready else 503}
        self.send_response(codes.get(self.path, 404))
        self.end_headers()
    def log_message(self, *args):
        pass
http.server.HTTPServer(("127.0.0.1", port), Health).serve_forever()
"""


STARTING = ("restarting", "unhealthy")  # before the supervisor forks; before it listens


@pytest.fixture
def supervised(tmp_path: Path) -> Iterator[Callable[[str, list[str], int], AppProcess]]:
    """Starts supervised services named as asked; all are stopped afterwards."""
    started: list[AppProcess] = []

    def start(name: str, program: list[str], port: int) -> AppProcess:
        argv = tuple(supervised_argv(program))
        app = AppProcess(Service(name, argv, port, f"http://127.0.0.1:{port}/readyz"), tmp_path)
        app.start()
        started.append(app)
        return app

    yield start
    for app in started:
        app.stop(timeout=10)


def health_server(port: int, mode: str) -> list[str]:
    return [sys.executable, "-c", HEALTH_SERVER, str(port), mode]


def observed_until(app: AppProcess, wanted: Callable[[Observed], bool], timeout: float) -> Observed:
    deadline = time.monotonic() + timeout
    while not wanted(seen := observe(app)):
        assert time.monotonic() < deadline, f"{app.name} still {seen} after {timeout}s"
        time.sleep(0.1)
    return seen


@pytest.mark.fault
@pytest.mark.timeout(120)  # its waits: 20 s + 20 s
def test_status_shows_the_programs_own_pid_and_a_killed_one_comes_back(
    supervised: Callable[[str, list[str], int], AppProcess],
) -> None:
    port = free_port()
    app = supervised("web", health_server(port, "ready"), port)
    supervisor = app.pid()
    assert supervisor is not None

    first = observed_until(app, lambda seen: seen.state == "up", 20)
    assert first.pid is not None and first.pid != supervisor

    os.kill(first.pid, signal.SIGKILL)  # as an operator would, with the pid status shows

    again = observed_until(app, lambda seen: seen.state == "up" and seen.pid != first.pid, 20)
    assert again.pid is not None and is_alive(again.pid)
    assert app.pid() == supervisor


def test_states_tell_a_standby_from_a_silent_process_from_a_crashing_one(
    supervised: Callable[[str, list[str], int], AppProcess],
) -> None:
    port = free_port()
    standby = supervised("standby", health_server(port, "standby"), port)
    silent = supervised("silent", [sys.executable, "-c", "import time; time.sleep(60)"], 1)
    crashing = supervised("crashing", [sys.executable, "-c", "raise SystemExit(3)"], 1)

    answering = observed_until(standby, lambda seen: seen.state not in STARTING, 20)
    assert answering.state == "not ready"
    assert observed_until(silent, lambda s: s.state != "restarting", 20).state == "unhealthy"
    assert observed_until(crashing, lambda s: s.state == "restarting", 20).pid is None

    crashing.stop(timeout=10)
    assert observe(crashing) == Observed("crashing", "crashing", "down", None)


def test_a_service_serves_when_one_instance_is_up_and_the_rest_stand_by() -> None:
    up = Observed("projector", "projector", "up", 10)
    standby = Observed("projector-2", "projector", "not ready", 11)
    silent = Observed("projector-2", "projector", "unhealthy", 11)

    assert all_serving([up, standby])
    assert not all_serving([standby])
    assert not all_serving([up, silent])
    assert not all_serving([up, Observed("gateway", "gateway", "down", None)])
