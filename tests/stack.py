"""Test helper: run Nexus services as real OS processes (`nexus run NAME`) for one test."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx

from gateway.auth import TokenVerifier
from infra.service_env import environment, service_port, with_free_ports
from infra.settings import Settings
from streams.topics import ensure_topics

NEXUS = str(Path(sys.executable).with_name("nexus"))


class ServiceProcess:
    """One `nexus run NAME` child; its output goes to a log file beside the test's home."""

    def __init__(self, name: str, settings: Settings) -> None:
        self.name, self.settings = name, settings
        self.port = service_port(settings, name)
        self.log_path = settings.home / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self, timeout: float = 60.0, probe: str = "/readyz") -> ServiceProcess:
        self.starts += 1
        with self.log_path.open("ab") as log:  # the child keeps its own copy of the fd
            self.process = subprocess.Popen(
                [NEXUS, "run", self.name],
                env=environment(self.settings),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.wait_ready(timeout, probe)
        return self

    def wait_ready(self, timeout: float, probe: str = "/readyz") -> None:
        url = f"http://127.0.0.1:{self.port}{probe}"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"{self.name} exited: {self.log_path.read_text()[-3000:]}")
            try:
                if httpx.get(url, timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError(
            f"{self.name} not ready after {timeout}s: {self.log_path.read_text()[-3000:]}"
        )

    def kill(self) -> None:
        """SIGKILL: no flush, no commit, no goodbye."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def prepared(settings: Settings, **updates: object) -> Settings:
    """`settings` with a free port for every service and `updates`, its topics created."""
    ready = with_free_ports(settings).model_copy(update=updates)
    ensure_topics(ready)
    return ready


@contextmanager
def running(settings: Settings, names: Sequence[str]) -> Iterator[dict[str, ServiceProcess]]:
    """Start the services in order, yield them by name, stop them in reverse order."""
    services = {name: ServiceProcess(name, settings) for name in names}
    try:
        for service in services.values():
            service.start()
        yield services
    finally:
        for service in reversed(services.values()):
            service.stop()


@contextmanager
def api_client(settings: Settings, subject: str, scopes: list[str]) -> Iterator[httpx.Client]:
    """An HTTP client for the gateway, with a token for `subject` holding `scopes`."""
    verifier = TokenVerifier(
        settings.resolved_jwt_secret(), settings.jwt_issuer, settings.jwt_audience
    )
    token = verifier.issue(subject, scopes)
    with httpx.Client(
        base_url=f"http://127.0.0.1:{settings.gateway_port}",
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    ) as client:
        yield client
