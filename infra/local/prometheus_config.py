"""Prometheus's configuration, derived from the settings: one scrape job per service, one
target per instance NEXUS_SCALE runs, and the rules of infra/prometheus/rules.yml.

`job` names the service (`projector`) and `instance` the instance (`projector-2`, as
`nexus status` names it), not a host:port, so alerts and dashboards read like the CLI. The
gateway serves /metrics on its own port; workers on their health ports (infra/config/scale.py).
The configuration is JSON, which Prometheus reads as the YAML subset it is.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from infra.config.scale import SERVICES, ServiceName, instance_name
from infra.config.settings import PROJECT_ROOT, Settings

RULES_FILE = PROJECT_ROOT / "infra" / "prometheus" / "rules.yml"
# The configuration compose.yml's Prometheus reads: the same jobs, its hosts the services.
COMPOSE_CONFIG_FILE = PROJECT_ROOT / "infra" / "prometheus" / "compose-prometheus.json"
COMPOSE_RULES_FILE = "/etc/prometheus/rules.yml"  # where compose.yml mounts RULES_FILE
SCRAPE_INTERVAL = "15s"

# (service, instance number from 1, port) -> the host:port Prometheus scrapes.
Address = Callable[[ServiceName, int, int], str]


def local_address(settings: Settings) -> Address:
    """Where `nexus up`'s instances listen: the gateway's host, else NEXUS_METRICS_HOST."""

    def address(service: ServiceName, index: int, port: int) -> str:
        host = settings.gateway_host if service == "gateway" else settings.metrics_host
        return f"{_reachable(host)}:{port}"

    return address


def _reachable(host: str) -> str:
    # A wildcard bind is reached on loopback; an IPv6 literal needs brackets in host:port.
    if host in ("0.0.0.0", ""):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


def scrape_jobs(settings: Settings, address: Address) -> list[dict[str, Any]]:
    """One job per service, one static target group per instance."""
    return [
        {
            "job_name": service,
            "static_configs": [
                {
                    "targets": [address(service, index, settings.instance_port(service, index))],
                    "labels": {"instance": instance_name(service, index)},
                }
                for index in range(1, settings.instances(service) + 1)
            ],
        }
        for service in SERVICES
    ]


def prometheus_config(settings: Settings, address: Address, rules: Path | str) -> dict[str, Any]:
    return {
        "global": {"scrape_interval": SCRAPE_INTERVAL, "evaluation_interval": SCRAPE_INTERVAL},
        "rule_files": [str(rules)],
        "scrape_configs": scrape_jobs(settings, address),
    }


def local_config_text(settings: Settings) -> str:
    """What `nexus up` writes to `<home>/prometheus/prometheus.yml`."""
    return _text(prometheus_config(settings, local_address(settings), RULES_FILE))


def compose_config_text() -> str:
    """COMPOSE_CONFIG_FILE's content: the default ports (those compose.yml sets), one
    instance of each service, each reached by its Compose service name."""

    def address(service: ServiceName, index: int, port: int) -> str:
        return f"{service}:{port}"

    defaults = Settings.model_construct()  # not this environment's NEXUS_* variables
    return _text(prometheus_config(defaults, address, COMPOSE_RULES_FILE))


def _text(config: dict[str, Any]) -> str:
    return json.dumps(config, indent=2) + "\n"
