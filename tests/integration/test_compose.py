"""compose.yml is a valid Compose file describing the same stack as `nexus up`.

No Docker engine runs here, so this checks the file with a real Compose implementation's
`config`; `make install` (part of `make test`) installs one when it is missing.
"""

from __future__ import annotations

import subprocess

import pytest

from infra.config.settings import PROJECT_ROOT
from infra.local.processes import compose_command

COMPOSE_FILE = PROJECT_ROOT / "compose.yml"
NEXUS_SERVICES = (
    "prepare",
    "command-processor",
    "projector",
    "notifier",
    "workflows",
    "analytics",
    "gateway",
)


def _compose(*args: str) -> str:
    command = compose_command()
    if command is None:
        pytest.fail("no Docker Compose found: run `make install` (nexus install --compose)")
    result = subprocess.run(
        [*command, "--project-directory", str(PROJECT_ROOT), "-f", str(COMPOSE_FILE), *args],
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

    assert sorted(services) == sorted(["kafka", "postgres", *NEXUS_SERVICES])
    assert sorted(volumes) == ["kafka-data", "nexus-home", "pg-data"]


def test_nexus_services_use_the_compose_infrastructure() -> None:
    config = _compose("config")

    assert "image: apache/kafka:4.1.1" in config
    assert "image: postgres:16" in config
    assert config.count("NEXUS_KAFKA_BOOTSTRAP: kafka:9092") == len(NEXUS_SERVICES)
    assert config.count("@postgres:5432/nexus") == len(NEXUS_SERVICES)
    assert "127.0.0.1:3000:3000" in config
