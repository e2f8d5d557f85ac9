"""compose.yml is a valid Compose file describing the same stack as `nexus up` (Prometheus,
Grafana and Jaeger besides), and compose.cluster.yml over it the replicated cluster of
`NEXUS_KAFKA_BROKERS=3 nexus up`.

No Docker engine runs here, so this checks the file with a real Compose implementation's
`config`; `make install` (part of `make test`) installs one when it is missing.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]

from infra.config.settings import PROJECT_ROOT, Replication
from infra.local.processes import compose_command
from infra.local.prometheus_config import COMPOSE_CONFIG_FILE, COMPOSE_RULES_FILE, RULES_FILE

COMPOSE_FILE = PROJECT_ROOT / "compose.yml"
CLUSTER_FILE = PROJECT_ROOT / "compose.cluster.yml"
KAFKA_NODES = ("kafka", "kafka-2", "kafka-3")
# What may differ between two nodes of the cluster.
NODE_OWN = {"KAFKA_NODE_ID", "KAFKA_ADVERTISED_LISTENERS"}
NEXUS_SERVICES = (
    "prepare",
    "command-processor",
    "projector",
    "notifier",
    "workflows",
    "analytics",
    "gateway",
)
OBSERVABILITY = ("prometheus", "grafana", "jaeger")
VOLUMES = ["grafana-data", "kafka-data", "nexus-home", "pg-data", "prometheus-data"]
GRAFANA = PROJECT_ROOT / "infra" / "grafana"


def _compose(*args: str, files: tuple[Path, ...] = (COMPOSE_FILE,)) -> str:
    command = compose_command()
    if command is None:
        pytest.fail("no Docker Compose found: run `make install` (nexus install --compose)")
    chosen = [arg for file in files for arg in ("-f", str(file))]
    result = subprocess.run(
        [*command, "--project-directory", str(PROJECT_ROOT), *chosen, *args],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_compose_file_is_valid() -> None:
    _compose("config", "--quiet")


def test_compose_declares_the_whole_stack() -> None:
    services = _compose("config", "--services").split()
    volumes = _compose("config", "--volumes").split()

    assert sorted(services) == sorted(["kafka", "postgres", *NEXUS_SERVICES, *OBSERVABILITY])
    assert sorted(volumes) == VOLUMES


def test_nexus_services_use_the_compose_infrastructure() -> None:
    config = _compose("config")

    assert "image: apache/kafka:4.1.1" in config
    assert "image: postgres:16" in config
    assert config.count("NEXUS_KAFKA_BOOTSTRAP: kafka:9092") == len(NEXUS_SERVICES)
    assert config.count("@postgres:5432/nexus") == len(NEXUS_SERVICES)
    assert "127.0.0.1:3000:3000" in config


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    """compose.yml as Compose resolves it."""
    resolved: dict[str, Any] = yaml.safe_load(_compose("config"))
    return resolved


def _mounts(service: dict[str, Any]) -> dict[str, str]:
    """target -> source of a service's bind mounts, in either syntax Compose prints."""
    found = {}
    for volume in service["volumes"]:
        if isinstance(volume, dict):
            found[volume["target"]] = volume["source"]
        else:
            source, target = volume.split(":")[:2]
            found[target] = source
    return found


def test_nexus_services_are_scrapable_and_export_traces_to_jaeger(config: dict[str, Any]) -> None:
    for name in NEXUS_SERVICES:
        env = config["services"][name]["environment"]
        assert env["NEXUS_METRICS_HOST"] == "0.0.0.0", name
        assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://jaeger:4318", name
    jaeger = config["services"]["jaeger"]
    # Compose v1 prints `127.0.0.1:4318:4318/tcp`, v2 {target: 4318, ...}.
    published = {
        str(port["target"]) if isinstance(port, dict) else port.split(":")[-1].split("/")[0]
        for port in jaeger["ports"]
    }
    assert published == {"4317", "4318", "16686"}


def test_prometheus_scrapes_each_service_on_its_port_with_the_rules(config: dict[str, Any]) -> None:
    services = config["services"]
    mounts = _mounts(services["prometheus"])

    assert Path(mounts["/etc/prometheus/prometheus.yml"]) == COMPOSE_CONFIG_FILE
    assert Path(mounts[COMPOSE_RULES_FILE]) == RULES_FILE
    scraped = yaml.safe_load(COMPOSE_CONFIG_FILE.read_text())["scrape_configs"]
    for job in scraped:
        [target] = job["static_configs"][0]["targets"]
        host, port = target.split(":")
        env = services[host]["environment"].items()
        serving = {str(v) for k, v in env if k.endswith(("_HEALTH_PORT", "_GATEWAY_PORT"))}
        assert serving == {port}, job["job_name"]


def test_grafana_is_provisioned_with_prometheus_and_every_dashboard(
    config: dict[str, Any],
) -> None:
    mounts = _mounts(config["services"]["grafana"])
    provider = yaml.safe_load((GRAFANA / "provisioning/dashboards/nexus.yml").read_text())
    datasource = yaml.safe_load((GRAFANA / "provisioning/datasources/prometheus.yml").read_text())

    assert Path(mounts["/etc/grafana/provisioning"]) == GRAFANA / "provisioning"
    [folder] = [
        target for target, source in mounts.items() if Path(source) == GRAFANA / "dashboards"
    ]
    assert provider["providers"][0]["options"]["path"] == folder
    assert datasource["datasources"][0]["url"] == "http://prometheus:9090"
    assert len(list((GRAFANA / "dashboards").glob("*.json"))) == 5


@pytest.fixture(scope="module")
def cluster_config() -> dict[str, Any]:
    """compose.yml with compose.cluster.yml over it, as Compose resolves (and validates) it."""
    config: dict[str, Any] = yaml.safe_load(_compose("config", files=(COMPOSE_FILE, CLUSTER_FILE)))
    return config


def _volume_source(volume: str | dict[str, str]) -> str:
    # Compose v1 prints the short syntax (source:target:mode), v2 the long one.
    return volume["source"] if isinstance(volume, dict) else volume.split(":")[0]


def test_the_cluster_override_adds_two_nodes_and_their_volumes(
    cluster_config: dict[str, Any],
) -> None:
    assert sorted(cluster_config["services"]) == sorted(
        ["postgres", *KAFKA_NODES, *NEXUS_SERVICES, *OBSERVABILITY]
    )
    assert sorted(cluster_config["volumes"]) == sorted(["kafka-2-data", "kafka-3-data", *VOLUMES])
    services = cluster_config["services"]
    sources = [_volume_source(services[node]["volumes"][0]) for node in KAFKA_NODES]
    assert sources == ["kafka-data", "kafka-2-data", "kafka-3-data"]


def test_cluster_nodes_share_everything_but_their_identity(
    cluster_config: dict[str, Any],
) -> None:
    services = cluster_config["services"]
    envs = [{k: str(v) for k, v in services[node]["environment"].items()} for node in KAFKA_NODES]
    replication = Replication.for_brokers(len(KAFKA_NODES))

    assert [env["KAFKA_NODE_ID"] for env in envs] == ["1", "2", "3"]
    shared = [{k: v for k, v in env.items() if k not in NODE_OWN} for env in envs]
    assert shared[0] == shared[1] == shared[2]
    assert shared[0]["KAFKA_CONTROLLER_QUORUM_VOTERS"] == (
        "1@kafka:9093,2@kafka-2:9093,3@kafka-3:9093"
    )
    for key in (
        "KAFKA_DEFAULT_REPLICATION_FACTOR",
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
    ):
        assert shared[0][key] == str(replication.factor), key
    assert shared[0]["KAFKA_MIN_INSYNC_REPLICAS"] == str(replication.min_insync)
    assert shared[0]["KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"] == str(replication.min_insync)


def test_nexus_services_use_every_cluster_node(cluster_config: dict[str, Any]) -> None:
    services = cluster_config["services"]

    for name in NEXUS_SERVICES:
        env = services[name]["environment"]
        assert env["NEXUS_KAFKA_BOOTSTRAP"] == "kafka:9092,kafka-2:9092,kafka-3:9092", name
        assert str(env["NEXUS_KAFKA_BROKERS"]) == "3", name
    assert set(services["prepare"]["depends_on"]) >= set(KAFKA_NODES)
