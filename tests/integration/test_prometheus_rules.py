"""The alert and recording rules (infra/prometheus/rules.yml) checked and unit-tested by the
real promtool, and every alert covered by a case that fires it and one where it stays quiet."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]

from infra.local.prometheus_config import RULES_FILE

RULE_TESTS = RULES_FILE.with_name("rules_test.yml")


def promtool(*args: str, cwd: Path = RULES_FILE.parent) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    assert binary, "promtool is installed by `make test` (nexus install --test-tools)"
    return subprocess.run([binary, *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def load(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(path.read_text())
    return loaded


def alert_names() -> list[str]:
    groups = load(RULES_FILE)["groups"]
    return [rule["alert"] for group in groups for rule in group["rules"] if "alert" in rule]


def test_promtool_accepts_the_rules() -> None:
    checked = promtool("check", "rules", RULES_FILE.name)

    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS" in checked.stdout


def test_every_rule_unit_test_passes() -> None:
    tested = promtool("test", "rules", RULE_TESTS.name)

    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout


def test_the_unit_tests_fail_when_an_alert_is_wrong(tmp_path: Path) -> None:
    """promtool really compares: a threshold moved by a factor of 10 breaks its case."""
    broken = RULES_FILE.read_text().replace("ratio_rate5m > 0.05", "ratio_rate5m > 0.5")
    (tmp_path / RULES_FILE.name).write_text(broken)
    shutil.copy(RULE_TESTS, tmp_path / RULE_TESTS.name)

    tested = promtool("test", "rules", RULE_TESTS.name, cwd=tmp_path)

    assert tested.returncode != 0
    assert "NexusHttpServerErrors" in tested.stdout + tested.stderr


@pytest.mark.parametrize("alert", alert_names())
def test_each_alert_has_a_case_that_fires_and_one_that_does_not(alert: str) -> None:
    cases = [
        case
        for test in load(RULE_TESTS)["tests"]
        for case in test.get("alert_rule_test", [])
        if case["alertname"] == alert
    ]

    assert any(case.get("exp_alerts") for case in cases), f"nothing fires {alert}"
    assert any(not case.get("exp_alerts") for case in cases), f"no quiet case for {alert}"


def test_the_alerts_the_issue_asks_for_are_there() -> None:
    assert sorted(alert_names()) == [
        "NexusCircuitOpen",  # a channel's circuit breaker open
        "NexusConsumerLagGrowing",
        "NexusDeadLetters",
        "NexusHttpRateLimited",  # 429 rate
        "NexusHttpServerErrors",  # 5xx rate
        "NexusLoopStalled",  # a consumer that stopped polling
        "NexusNotificationsGivenUp",
        "NexusProcessDown",  # up == 0
        "NexusProjectionLagging",  # projection lag behind the head
    ]
