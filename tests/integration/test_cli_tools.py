"""The operator CLI against a real broker: publish, tail, topics, token, schemas check."""

from __future__ import annotations

import json
import subprocess

from confluent_kafka import Producer
from stack import NEXUS

from aggregates.codec import to_data
from gateway.auth import TokenVerifier
from infra.config.settings import Settings
from infra.local.service_env import environment
from projections.catalog import PROJECTIONS
from projections.migrations import migrate
from sagas.notification.events import NotificationRequested, Route
from schemas.codec import AvroCodec
from schemas.timestamps import from_epoch_ms
from streams.kafka.config import producer_config
from streams.kafka.topics import LOGICAL_TOPICS, ensure_topics


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


def test_topics_lists_every_platform_topic(settings: Settings) -> None:
    ensure_topics(settings)
    listed = nexus(settings, "topics")
    assert listed.returncode == 0, listed.stderr
    rows = {line.split()[0]: line.split()[1:] for line in listed.stdout.splitlines()[1:]}
    assert rows == {settings.topic(t): [str(settings.partitions), "0"] for t in LOGICAL_TOPICS}


def test_tail_accepts_every_logical_topic_name(settings: Settings) -> None:
    ensure_topics(settings)
    for logical in LOGICAL_TOPICS:
        tailed = nexus(settings, "tail", logical, "--from-beginning", "--idle-exit", "0.5")
        assert (tailed.returncode, tailed.stdout, tailed.stderr) == (0, "", ""), logical


def test_tail_refuses_a_missing_topic_instead_of_waiting_silently(settings: Settings) -> None:
    tailed = nexus(settings, "tail", settings.topic("no-such-topic"), "--idle-exit", "0.5")
    assert tailed.returncode == 1
    assert f"no topic {settings.topic('no-such-topic')}" in tailed.stderr


def test_tail_notifications_prints_the_saga_events(settings: Settings) -> None:
    topic = ensure_topics(settings).notifications
    event = NotificationRequested(
        "n-1", "u-1", "welcome", None, (Route(("email",)),), "{}", None, False,
        1_000, 3_600_000, 3, 1000, 300_000,
    )  # fmt: skip
    record = {
        "event_id": "n-1-e1", "type": event.TYPE, "aggregate_type": "notification",
        "aggregate_id": "n-1", "aggregate_version": 1, "occurred_at": from_epoch_ms(1_000),
        "correlation_id": "c-1", "causation_id": None, "actor": "notifier",
        "data": to_data(event),
    }  # fmt: skip
    producer = Producer(producer_config(settings))
    producer.produce(topic, key=b"n-1", value=AvroCodec().encode(event.TYPE, record))
    assert producer.flush(30) == 0

    tailed = nexus(settings, "tail", "notifications", "--from-beginning", "--max", "1")

    assert tailed.returncode == 0, tailed.stderr
    line = json.loads(tailed.stdout)
    assert line["schema"].split()[0] == "notification.requested"
    assert (line["record"]["aggregate_id"], line["record"]["data"]["template"]) == (
        "n-1",
        "welcome",
    )


def test_replay_help_names_every_projection() -> None:
    shown = subprocess.run([NEXUS, "replay", "--help"], capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    assert all(name in shown.stdout for name in PROJECTIONS)
    refused = subprocess.run([NEXUS, "replay", "nope"], capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and "invalid choice" in refused.stderr
