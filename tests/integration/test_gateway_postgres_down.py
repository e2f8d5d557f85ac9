"""The gateway with its PostgreSQL killed: queries answer 503 `database-unavailable` with
Retry-After (never 500), and 200 again once the server is back, the gateway untouched."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from stack import api_client, prepared, running

from infra.config.settings import Settings
from infra.local.postgres_server import PostgresServer
from infra.local.processes import is_alive
from infra.local.supervise import supervised_child
from projections.migrations import migrate

# Its waits: PostgreSQL's start (90 s) twice, the gateway's (60 s), the kill 30 s, the heal 60 s.
pytestmark = [pytest.mark.fault, pytest.mark.timeout(420)]


def assert_problem(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == code


def kill(server: PostgresServer) -> None:
    """SIGKILL the postmaster and every backend, as a crashed host would: no process is left
    to tell the clients (each child runs in a session of its own, so killpg would miss them)."""
    supervisor = server.pid()
    pid = supervised_child(supervisor) if supervisor is not None else None
    assert supervisor is not None and pid is not None
    for stopped in (supervisor, pid):  # no restart; no backend learns of its death, says goodbye
        os.kill(stopped, signal.SIGSTOP)
    children = _children(pid)
    for victim in (*children, pid, supervisor):
        with contextlib.suppress(ProcessLookupError):
            os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while server.pid() is not None or any(is_alive(child) for child in children):
        assert time.monotonic() < deadline, "PostgreSQL did not die"
        time.sleep(0.05)


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(stat.parent.name))
    return found


def eventually_ok(api: httpx.Client, path: str, timeout: float = 60.0) -> httpx.Response:
    """The first 200 for `path`; every answer before it is a 503 problem."""
    deadline = time.monotonic() + timeout
    while True:
        response = api.get(path)
        if response.status_code == 200 or time.monotonic() > deadline:
            return response
        assert_problem(response, 503, "database-unavailable")
        time.sleep(0.2)


def test_queries_answer_503_while_postgres_is_down_and_200_after(
    settings: Settings, postgres_server_factory: Callable[[], PostgresServer]
) -> None:
    server = postgres_server_factory()
    private = prepared(settings, database_url=server.url(), database_timeout_s=2.0)
    migrate(private.resolved_database_url)
    with running(private, ("gateway",)), api_client(private, "alice", ["users:read"]) as api:
        assert api.get("/api/v1/users").status_code == 200

        kill(server)
        # Pooled connections now fail mid-query; new ones are refused until the pool times out.
        for path in ("/api/v1/users", "/api/v1/users/alice", "/api/v1/users", "/api/v1/users"):
            started = time.monotonic()
            down = api.get(path)
            assert_problem(down, 503, "database-unavailable")
            assert down.headers["retry-after"] == "5"
            assert time.monotonic() - started < 10  # the pool's timeout, not a hung request
        ready = api.get("/readyz")
        assert ready.status_code == 503 and ready.json()["checks"]["postgres"] is False

        server.start()
        assert eventually_ok(api, "/api/v1/users").status_code == 200
        assert_problem(api.get("/api/v1/users/alice"), 404, "user-not-found")
        assert api.get("/readyz").status_code == 200
