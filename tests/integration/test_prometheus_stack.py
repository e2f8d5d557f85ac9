"""Prometheus as `nexus up` runs it, beside every real process (two projectors) on the
session's Kafka and PostgreSQL and on free ports: every target up within a bound, the rules
evaluated without error, `nexus status` and `nexus logs` showing it; and every metric that a
dashboard panel or a rule reads is one the running processes export."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import yaml  # type: ignore[import-untyped]
from promql_names import exported_names, family, metric_names
from stack import api_client
from test_scale_out import instance_ports, nexus, status_rows

from gateway.auth import DEFAULT_SCOPES
from infra.config.scale import SERVICES, instance_name
from infra.config.settings import PROJECT_ROOT, Settings
from infra.local.prometheus_config import RULES_FILE

TARGETS_UP_WITHIN_S = 60.0  # after `nexus up` returns: four scrape intervals
# Three failed email attempts with back-off, then a scrape and a rule evaluation (15 s each).
GIVEN_UP_ALERT_WITHIN_S = 120.0
DASHBOARDS = sorted((PROJECT_ROOT / "infra" / "grafana" / "dashboards").glob("*.json"))
# Series Prometheus writes itself for every target, not scraped from it.
SCRAPE_SERIES = {"up"}


@dataclass(frozen=True)
class Stack:
    env: dict[str, str]
    settings: Settings  # as the `nexus` processes read it from `env`

    @property
    def prometheus(self) -> str:
        return f"http://127.0.0.1:{self.settings.prometheus_port}"


@pytest.fixture(scope="module")
def stack(module_settings: Settings) -> Iterator[Stack]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEXUS_")}
    env.update(
        NEXUS_HOME=str(module_settings.home),
        NEXUS_KAFKA_BOOTSTRAP=module_settings.resolved_kafka_bootstrap,
        NEXUS_DATABASE_URL=module_settings.resolved_database_url,
        NEXUS_TOPIC_PREFIX=module_settings.topic_prefix,
        NEXUS_JWT_SECRET=module_settings.resolved_jwt_secret(),
        NEXUS_SCALE="projector=2",
        NEXUS_LOG_LEVEL="warning",
        **instance_ports(),
    )
    fields = {k.removeprefix("NEXUS_").lower(): v for k, v in env.items() if k.startswith("NEXUS_")}
    try:
        up = nexus(env, "up", timeout=400)
        assert up.returncode == 0, up.stdout + up.stderr
        yield Stack(env, Settings.model_validate(fields))
    finally:
        nexus(env, "down", timeout=180)


def api(stack: Stack, path: str) -> Any:
    answer = httpx.get(f"{stack.prometheus}/api/v1/{path}", timeout=5)
    assert answer.status_code == 200, answer.text
    return answer.json()["data"]


def instances(settings: Settings) -> set[tuple[str, str]]:
    return {
        (service, instance_name(service, n))
        for service in SERVICES
        for n in range(1, settings.instances(service) + 1)
    }


def test_every_instance_is_a_target_and_up(stack: Stack) -> None:
    deadline = time.monotonic() + TARGETS_UP_WITHIN_S
    while True:
        targets = api(stack, "targets")["activeTargets"]
        health = {(t["labels"]["job"], t["labels"]["instance"]): t for t in targets}
        if all(t["health"] == "up" for t in targets) and set(health) == instances(stack.settings):
            break
        down = {
            key: (t["health"], t["lastError"]) for key, t in health.items() if t["health"] != "up"
        }
        assert time.monotonic() < deadline, f"after {TARGETS_UP_WITHIN_S}s: {down}"
        time.sleep(1)
    assert ("projector", "projector-2") in health  # the standby is scraped like the rest


def test_the_rules_are_loaded_and_evaluate_without_error(stack: Stack) -> None:
    deadline = time.monotonic() + TARGETS_UP_WITHIN_S
    while True:
        rules = [rule for group in api(stack, "rules")["groups"] for rule in group["rules"]]
        if rules and all(rule["health"] == "ok" for rule in rules):
            break
        unhealthy = {
            rule["name"]: rule.get("lastError") for rule in rules if rule["health"] != "ok"
        }
        assert time.monotonic() < deadline, unhealthy
        time.sleep(1)
    alerts = {rule["name"] for rule in rules if rule["type"] == "alerting"}
    assert "NexusProcessDown" in alerts and len(alerts) == 9


def test_status_and_logs_show_prometheus(stack: Stack) -> None:
    code, rows = status_rows(stack.env)
    logs = nexus(stack.env, "logs", "prometheus", "-n", "200")

    assert rows["prometheus"][0] == "up" and rows["prometheus"][1] is not None
    assert code == 0, rows
    assert logs.returncode == 0, logs.stderr
    assert "Server is ready to receive web requests." in logs.stdout


def pages(stack: Stack) -> dict[str, str]:
    """Every instance's /metrics page, by the address Prometheus scrapes."""
    config = json.loads((stack.settings.home / "prometheus" / "prometheus.yml").read_text())
    addresses = [
        address
        for job in config["scrape_configs"]
        for group in job["static_configs"]
        for address in group["targets"]
    ]
    assert len(addresses) == len(instances(stack.settings))
    return {address: httpx.get(f"http://{address}/metrics").text for address in addresses}


def test_every_metrics_page_passes_promtools_lint(stack: Stack) -> None:
    """Names with units and `_total`, help text on every metric (`promtool check metrics`)."""
    promtool = shutil.which("promtool")
    assert promtool, "promtool is installed by `make test` (nexus install --test-tools)"
    for address, page in pages(stack).items():
        check = subprocess.run(
            [promtool, "check", "metrics"], input=page, capture_output=True, text=True, timeout=30
        )
        assert check.returncode == 0, f"{address}: {check.stdout}{check.stderr}"


def rule_groups() -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = yaml.safe_load(RULES_FILE.read_text())["groups"]
    return groups


def test_every_dashboard_and_rule_reads_metrics_the_processes_export(stack: Stack) -> None:
    recorded = {
        rule["record"] for group in rule_groups() for rule in group["rules"] if "record" in rule
    }
    known = set().union(*map(exported_names, pages(stack).values())) | recorded | SCRAPE_SERIES
    queries = [
        (f"{path.name}: {panel['title']}", target["expr"])
        for path in DASHBOARDS
        for panel in json.loads(path.read_text())["panels"]
        for target in panel["targets"]
    ]
    queries += [
        (rule.get("alert") or rule["record"], rule["expr"])
        for g in rule_groups()
        for rule in g["rules"]
    ]

    unknown = {
        where: sorted(
            name for name in metric_names(expr) if family(name) not in known and name not in known
        )
        for where, expr in queries
    }

    assert len(DASHBOARDS) == 5 and len(queries) > 50
    assert {where: names for where, names in unknown.items() if names} == {}
    assert all(metric_names(expr) for _, expr in queries)  # the parser found something in each


@contextmanager
def registered(stack: Stack, subject: str) -> Iterator[httpx.Client]:
    """A client of the gateway for `subject`, registered as a user with an email address."""
    with api_client(stack.settings, subject, list(DEFAULT_SCOPES)) as client:
        body = {"email": f"{subject}@example.com", "name": subject.title()}
        created = client.post("/api/v1/users", json=body, headers={"Prefer": "wait=15"})
        assert created.status_code == 201, created.text
        yield client


def test_consumer_groups_report_their_lag_and_a_decided_command_leaves_none(stack: Stack) -> None:
    with registered(stack, "prom"):
        pass
    group = f"{stack.settings.topic_prefix}.command-processor"
    page = f"http://127.0.0.1:{stack.settings.command_processor_health_port}/metrics"

    deadline = time.monotonic() + 30
    while (lag := _group_lag(httpx.get(page).text, group)) != 0:
        assert time.monotonic() < deadline, f"{group} lag {lag}"
        time.sleep(0.5)
    assert 'loop="command poll loop"' in httpx.get(page).text


def test_a_notification_that_gives_up_fires_its_alert(stack: Stack) -> None:
    """No NEXUS_SMTP_HOST here: the email attempts fail and the saga gives up."""
    with registered(stack, "alerted") as client:
        data = {"user": {"name": "Alerted", "email": "alerted@example.com"},
                "app": {"name": "Nexus", "url": "http://localhost:3000"}}  # fmt: skip
        body = {"user_id": "alerted", "template": "welcome", "data": data}
        accepted = client.post("/api/v1/notifications", json=body)
    assert accepted.status_code == 202, accepted.text

    deadline = time.monotonic() + GIVEN_UP_ALERT_WITHIN_S
    while not (firing := _firing(stack, "NexusNotificationsGivenUp")):
        assert time.monotonic() < deadline, api(stack, "alerts")
        time.sleep(1)
    assert firing[0]["labels"]["job"] == "notifier"


def _firing(stack: Stack, name: str) -> list[dict[str, Any]]:
    alerts: list[dict[str, Any]] = api(stack, "alerts")["alerts"]
    return [a for a in alerts if a["labels"]["alertname"] == name and a["state"] == "firing"]


def _group_lag(page: str, group: str) -> float | None:
    """The sum of `group`'s nexus_consumer_lag_messages samples; None before the first."""
    values = [
        float(line.rsplit(" ", 1)[1])
        for line in page.splitlines()
        if line.startswith("nexus_consumer_lag_messages{") and f'group="{group}"' in line
    ]
    return sum(values) if values else None
