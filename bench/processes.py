"""Child processes the bench drives: `nexus run NAME` services and the bare reference app.

Adapted from tests/stack.py: settings reach a service as the NEXUS_* variables its own
Settings() reads back, and readiness is an HTTP probe answering 200.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import httpx

from gateway.auth import TokenVerifier
from infra.service_env import environment, service_port
from infra.settings import PROJECT_ROOT, Settings

NEXUS = str(Path(sys.executable).with_name("nexus"))


class ChildProcess:
    """One child in its own session, output appended to `log_path`; ready when `probe` is 200."""

    def __init__(
        self, name: str, argv: Sequence[str], port: int, log_path: Path, env: dict[str, str]
    ) -> None:
        self.name, self.argv, self.port, self.log_path, self.env = name, argv, port, log_path, env
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self, probe: str = "/readyz", timeout: float = 90.0) -> ChildProcess:
        with self.log_path.open("ab") as log:  # the child keeps its own copy of the fd
            self.process = subprocess.Popen(
                list(self.argv), env=self.env, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True, cwd=PROJECT_ROOT,
            )  # fmt: skip
        self._wait_ready(probe, timeout)
        return self

    def _wait_ready(self, probe: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {self._log_tail()}")
            try:
                if httpx.get(self.url + probe, timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} not ready after {timeout}s: {self._log_tail()}")

    def _log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)


def nexus_service(name: str, settings: Settings, label: str | None = None) -> ChildProcess:
    """`nexus run NAME` with these settings, called `label` (default NAME) in figures and in
    the name of its log, which lands in the settings' home."""
    port, label = service_port(settings, name), label or name
    log_path = settings.home / f"{label}.log"
    return ChildProcess(label, [NEXUS, "run", name], port, log_path, environment(settings))


def bare_app(port: int, log_path: Path) -> ChildProcess:
    """The reference Starlette app of bench/bare_app.py, served by uvicorn like the gateway."""
    argv = [sys.executable, "-m", "bench.bare_app", str(port)]
    return ChildProcess("bare-starlette", argv, port, log_path, dict(os.environ))


class Stack:
    """Several services started in order and stopped in reverse, also on failure."""

    def __init__(self, children: Sequence[ChildProcess]) -> None:
        self.children = list(children)
        self.started: list[ChildProcess] = []

    def __enter__(self) -> Stack:
        try:
            for child in self.children:
                self.started.append(child.start())
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        for child in reversed(self.started):
            child.stop()
        self.started.clear()


def gateway_token(settings: Settings) -> str:
    """A bearer token the gateway of these settings accepts for user commands."""
    verifier = TokenVerifier(
        settings.resolved_jwt_secret(), settings.jwt_issuer, settings.jwt_audience
    )
    return verifier.issue("bench", ["users:read", "users:write", "users:admin"], ttl_seconds=3600)
