"""Settings handed to a child process: as NEXUS_* variables, and with free service ports.

Tests and benchmarks run several stacks side by side, each service on a port of its own.
"""

from __future__ import annotations

import os

from infra.config.scale import SERVICE_PORT_FIELDS, ServiceName
from infra.config.settings import Settings
from infra.local.processes import free_ports

__all__ = ["SERVICE_PORT_FIELDS", "environment", "service_port", "with_free_ports"]


def service_port(settings: Settings, service: ServiceName) -> int:
    port: int = getattr(settings, SERVICE_PORT_FIELDS[service])
    return port


def with_free_ports(settings: Settings) -> Settings:
    """The same settings with a free port for every service."""
    fields = SERVICE_PORT_FIELDS.values()
    return settings.model_copy(update=dict(zip(fields, free_ports(len(fields)), strict=True)))


def environment(settings: Settings) -> dict[str, str]:
    """This process's environment with every setting as the NEXUS_* variable that reads it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEXUS_")}
    for name, value in settings.model_dump().items():
        if value is not None:
            env[f"NEXUS_{name.upper()}"] = str(value)
    return env
