"""The Prometheus configuration derived from the settings: a job per service, a target per
instance with the instance's name, accepted by the real promtool; compose.yml's copy is the
same derivation for the Compose network."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from infra.config.settings import Settings
from infra.local.prometheus_config import (
    COMPOSE_CONFIG_FILE,
    COMPOSE_RULES_FILE,
    RULES_FILE,
    compose_config_text,
    local_config_text,
)


def promtool_check_config(path: Path) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    assert binary, "promtool is installed by `make test` (nexus install --test-tools)"
    return subprocess.run(
        [binary, "check", "config", str(path)], capture_output=True, text=True, timeout=60
    )


def targets(text: str) -> dict[str, list[tuple[str, str]]]:
    """job -> [(address, instance label)]."""
    return {
        job["job_name"]: [
            (group["targets"][0], group["labels"]["instance"]) for group in job["static_configs"]
        ]
        for job in json.loads(text)["scrape_configs"]
    }


def test_every_instance_of_every_service_is_a_target_named_like_nexus_status() -> None:
    settings = Settings(scale="projector=2,gateway=3", gateway_port=4000)

    assert targets(local_config_text(settings)) == {
        "command-processor": [("127.0.0.1:3101", "command-processor")],
        "projector": [("127.0.0.1:3102", "projector"), ("127.0.0.1:3112", "projector-2")],
        "workflows": [("127.0.0.1:3104", "workflows")],
        "notifier": [("127.0.0.1:3103", "notifier")],
        "analytics": [("127.0.0.1:3105", "analytics")],
        # Several gateways share port 4000; each is scraped on its own port.
        "gateway": [
            ("127.0.0.1:4010", "gateway"),
            ("127.0.0.1:4020", "gateway-2"),
            ("127.0.0.1:4030", "gateway-3"),
        ],
    }


def test_a_lone_gateway_is_scraped_on_its_port_and_wildcard_binds_on_loopback() -> None:
    settings = Settings(gateway_host="0.0.0.0", metrics_host="0.0.0.0", gateway_port=4000)

    found = targets(local_config_text(settings))

    assert found["gateway"] == [("127.0.0.1:4000", "gateway")]
    assert found["notifier"] == [("127.0.0.1:3103", "notifier")]


def test_promtool_accepts_the_configuration_with_its_rules(tmp_path: Path) -> None:
    config = tmp_path / "prometheus.yml"
    config.write_text(local_config_text(Settings(scale="notifier=2")))

    checked = promtool_check_config(config)

    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert str(RULES_FILE) in checked.stdout


def test_the_compose_configuration_is_derived_from_the_settings(tmp_path: Path) -> None:
    """Regenerate it with `compose_config_text()` when services or ports change."""
    text = COMPOSE_CONFIG_FILE.read_text()

    assert text == compose_config_text()
    assert targets(text)["projector"] == [("projector:3102", "projector")]
    assert targets(text)["gateway"] == [("gateway:3000", "gateway")]
    shutil.copy(RULES_FILE, tmp_path / RULES_FILE.name)
    local_copy = tmp_path / "prometheus.yml"
    local_copy.write_text(text.replace(COMPOSE_RULES_FILE, str(tmp_path / RULES_FILE.name)))
    checked = promtool_check_config(local_copy)
    assert checked.returncode == 0, checked.stdout + checked.stderr
