"""Child processes the bench drives: `nexus run NAME` services and the bare reference app.

Settings reach a service as the NEXUS_* variables its own Settings() reads back.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from gateway.auth import TokenVerifier
from infra.config.scale import ServiceName
from infra.config.settings import PROJECT_ROOT, Settings
from infra.local.child_process import ChildProcess
from infra.local.processes import free_port
from infra.local.service_env import environment, service_port

NEXUS = str(Path(sys.executable).with_name("nexus"))


def nexus_service(
    name: ServiceName,
    settings: Settings,
    label: str | None = None,
    extra_env: Mapping[str, str] | None = None,
    probe_port: int | None = None,
) -> ChildProcess:
    """`nexus run NAME` with these settings (and `extra_env`), called `label` (default NAME)
    in figures and in the name of its log, which lands in the settings' home; its readiness
    is probed on `probe_port` (default: the service's port)."""
    port, label = probe_port or service_port(settings, name), label or name
    log_path = settings.home / f"{label}.log"
    argv = [NEXUS, "run", name]
    env = environment(settings) | dict(extra_env or {})
    return ChildProcess(label, argv, port, log_path, env, PROJECT_ROOT)


def gateway_instances(settings: Settings, count: int) -> list[ChildProcess]:
    """`count` gateways sharing the settings' port (SO_REUSEPORT), as NEXUS_SCALE=gateway=N
    runs them, each probed on a port of its own so that one is not taken for another."""
    children = []
    for n in range(1, count + 1):
        own = free_port()
        instance = settings.model_copy(update={"gateway_instance_port": own})
        children.append(nexus_service("gateway", instance, f"gateway-{n}", probe_port=own))
    return children


def bare_app(port: int, log_path: Path) -> ChildProcess:
    """The reference Starlette app of bench/bare_app.py, served by uvicorn like the gateway."""
    argv = [sys.executable, "-m", "bench.bare_app", str(port)]
    return ChildProcess("bare-starlette", argv, port, log_path, os.environ, PROJECT_ROOT)


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
