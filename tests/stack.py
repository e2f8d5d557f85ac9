"""Test helper: run Nexus services as real OS processes (`nexus run NAME`) for one test."""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx

from gateway.auth import TokenVerifier
from infra.config.settings import Settings
from infra.local.child_process import ChildProcess
from infra.local.service_env import environment, service_port, with_free_ports
from streams.kafka.topics import ensure_topics

NEXUS = str(Path(sys.executable).with_name("nexus"))


class ServiceProcess(ChildProcess):
    """One `nexus run NAME` child; its output goes to a log file beside the test's home.
    `supervised`: `nexus run NAME --supervise`, restarted whenever it exits non-zero."""

    def __init__(self, name: str, settings: Settings, *, supervised: bool = False) -> None:
        port, log_path = service_port(settings, name), settings.home / f"{name}.log"
        argv = [NEXUS, "run", name, *(["--supervise"] if supervised else [])]
        super().__init__(name, argv, port, log_path, environment(settings))
        self.settings = settings

    def start(self, timeout: float = 60.0, probe: str = "/readyz") -> ServiceProcess:
        super().start(timeout, probe)
        return self


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
