"""The operator CLI against a real broker: publish, tail, topics, token, schemas check."""

from __future__ import annotations

import json
import subprocess

from stack import NEXUS

from gateway.auth import TokenVerifier
from infra.service_env import environment
from infra.settings import Settings
from projections.migrations import migrate
from streams.kafka.topics import ensure_topics


def nexus(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [NEXUS, *args], env=environment(settings), capture_output=True, text=True, timeout=60
    )


def test_publish_then_tail_and_topics(settings: Settings) -> None:
    ensure_topics(settings)
    data = json.dumps({"kind": "deploy", "subject_id": "svc-1", "attributes": {"v": "2"}})
    published = nexus(settings, "publish", "activity.recorded", "svc-1", data)
    assert published.returncode == 0, published.stderr
    position = json.loads(published.stdout)["position"]
    tailed = nexus(settings, "tail", "events", "--from-beginning", "--max", "1")
    assert tailed.returncode == 0, tailed.stderr
    line = json.loads(tailed.stdout)
    assert f"{line['partition']}-{line['offset']}" == position
    assert line["schema"] == "activity.recorded v1"
    assert line["record"]["data"] == {
        "kind": "deploy",
        "subject_id": "svc-1",
        "attributes": {"v": "2"},
    }
    listed = nexus(settings, "topics").stdout
    assert f"{settings.topic('events')} " in listed and f"{settings.topic('deadletter')} " in listed


def test_publish_rejects_data_that_breaks_the_schema(settings: Settings) -> None:
    ensure_topics(settings)
    bad = nexus(settings, "publish", "activity.recorded", "svc-1", '{"kind": 3}')
    assert bad.returncode != 0
    assert "activity.recorded" in bad.stderr


def test_token_verifies_with_the_configured_secret(settings: Settings) -> None:
    printed = nexus(settings, "token", "--sub", "ops", "--scope", "users:read")
    verifier = TokenVerifier(
        settings.resolved_jwt_secret(), settings.jwt_issuer, settings.jwt_audience
    )
    principal = verifier.principal("Bearer " + printed.stdout.strip())
    assert (principal.subject, principal.scopes) == ("ops", frozenset({"users:read"}))


def test_schemas_check_passes_on_the_shipped_schemas(settings: Settings) -> None:
    checked = nexus(settings, "schemas", "check")
    assert checked.returncode == 0, checked.stderr
    assert ", 0 incompatibilities" in checked.stdout


def test_replay_all_prints_one_line_per_projection(settings: Settings) -> None:
    ensure_topics(settings)
    migrate(settings.resolved_database_url)
    replayed = nexus(settings, "replay", "all", "--quiet")
    assert replayed.returncode == 0, replayed.stderr
    lines = [json.loads(line) for line in replayed.stdout.splitlines()]
    assert sorted(line["name"] for line in lines) == [
        "analytics", "anomalies", "command_outcomes", "memberships", "notifications", "users",
        "workspaces",
    ]  # fmt: skip
    assert all((line["old_version"], line["new_version"]) == (1, 2) for line in lines)


def test_templates_check_renders_every_shipped_template(settings: Settings) -> None:
    checked = nexus(settings, "templates", "check")
    assert checked.returncode == 0, checked.stderr
    assert "0 problems" in checked.stdout
