"""The app services, how many instances of each `nexus up` runs (NEXUS_SCALE), and their ports.

Instance n (counting from 1) of a worker answers /healthz, /readyz and /metrics on its base
port + 10·(n−1): the projector on 3102, 3112, 3122. Every gateway instance serves the one
NEXUS_GATEWAY_PORT (SO_REUSEPORT); when there are several, instance n also answers on
NEXUS_GATEWAY_PORT + 10·n (3010, 3020), so that each can be probed on its own.
"""

from __future__ import annotations

from typing import Literal, get_args

ServiceName = Literal[
    "command-processor", "projector", "workflows", "notifier", "analytics", "gateway"
]
SERVICES: tuple[ServiceName, ...] = get_args(ServiceName)  # in `nexus up`'s start order

# Each service's settings field holding its base port (/healthz, /readyz, /metrics).
SERVICE_PORT_FIELDS: dict[ServiceName, str] = {
    "command-processor": "command_processor_health_port",
    "projector": "projector_health_port",
    "workflows": "workflows_health_port",
    "notifier": "notifier_health_port",
    "analytics": "analytics_health_port",
    "gateway": "gateway_port",
}
MAX_INSTANCES = 16  # more than partitions (6 by default) would only stand idle
PORT_STRIDE = 10


def parse_scale(value: object) -> object:
    """`command-processor=2,projector=2` as {service: count}; a dict passes through.

    Raises ValueError naming the bad entry; counts are range-checked by the field's type."""
    if not isinstance(value, str):
        return value
    counts: dict[str, int] = {}
    for entry in (part.strip() for part in value.split(",") if part.strip()):
        name, sep, count = (item.strip() for item in entry.partition("="))
        if not sep or not count.isdigit():
            raise ValueError(f"NEXUS_SCALE: {entry!r} is not SERVICE=COUNT, e.g. projector=2")
        if name not in SERVICES:
            raise ValueError(f"NEXUS_SCALE: unknown service {name!r}; one of {', '.join(SERVICES)}")
        if name in counts:
            raise ValueError(f"NEXUS_SCALE: {name} is given twice")
        counts[name] = int(count)
    return counts


def format_scale(counts: dict[ServiceName, int]) -> str:
    """The NEXUS_SCALE text for `counts` (what `parse_scale` reads back)."""
    return ",".join(f"{name}={count}" for name, count in counts.items())


def instance_name(service: str, index: int) -> str:
    """`projector` for instance 1, `projector-n` for instance n: how the CLI, the logs and
    Prometheus's `instance` label name it."""
    return service if index == 1 else f"{service}-{index}"


def instance_port(service: ServiceName, base: int, index: int) -> int:
    """The port instance `index` (from 1) of `service` is probed on; see the module docstring."""
    if service == "gateway":
        return base + PORT_STRIDE * index
    return base + PORT_STRIDE * (index - 1)
