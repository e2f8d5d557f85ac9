"""`nexus saga audit` against a real broker: the saga topic alone, no read model."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime, timedelta
from typing import Any

from confluent_kafka import Producer
from stack import NEXUS

from aggregates.codec import to_data
from infra.config.settings import Settings
from infra.local.service_env import environment
from sagas.notification.events import (
    NotificationAttemptFailed,
    NotificationAttemptStarted,
    NotificationCompleted,
    NotificationDeferred,
    NotificationDelivered,
    NotificationEvent,
    NotificationFellBack,
    NotificationRendered,
    NotificationRequested,
    NotificationResumed,
    NotificationRetryScheduled,
    RenderedContent,
    Route,
)
from schemas.codec import AvroCodec
from streams.kafka.config import producer_config
from streams.kafka.partitioning import partition_for
from streams.kafka.topics import ensure_topics

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def ms(seconds: float) -> int:
    return int((T0 + timedelta(seconds=seconds)).timestamp() * 1000)


def requested(saga: str, template: str, routes: tuple[Route, ...], critical: bool) -> Any:
    return NotificationRequested(
        saga, f"u-{saga[2:]}", template, None, routes, "{}", None, critical,
        ms(0), ms(3600), 3, 1000, 300_000,
    )  # fmt: skip


# (saga, version, seconds after T0, event): n-eve has no v3. Both keys hash to one partition.
HISTORY: list[tuple[str, int, float, NotificationEvent]] = [
    ("n-ada", 1, 0, requested("n-ada", "welcome", (Route(("email", "sms")),), False)),
    ("n-eve", 1, 0.5, requested("n-eve", "anomaly_alert", (Route(("push", "email")),), True)),
    (
        "n-ada",
        2,
        1,
        NotificationRendered(
            (RenderedContent("email", "blob/1", 812), RenderedContent("sms", "blob/2", 64))
        ),
    ),  # fmt: skip
    ("n-eve", 2, 1.5, NotificationDeferred(ms(8 * 3600), "quiet_hours")),
    ("n-ada", 3, 2, NotificationAttemptStarted("email", 1, "n-ada:email:1")),
    ("n-ada", 4, 3, NotificationAttemptFailed("email", 1, "421 try later", True, ms(3), 0.5)),
    ("n-ada", 5, 3, NotificationRetryScheduled("email", 2, ms(5))),
    ("n-eve", 4, 8 * 3600, NotificationResumed(ms(8 * 3600))),
    ("n-eve", 5, 8 * 3600 + 1, NotificationRendered((RenderedContent("push", "blob/3", 90),))),
    ("n-ada", 6, 5, NotificationAttemptStarted("email", 2, "n-ada:email:2")),
    ("n-eve", 6, 8 * 3600 + 2, NotificationAttemptStarted("push", 1, "n-eve:push:1")),
    ("n-ada", 7, 6, NotificationDelivered("email", 2, "250 OK", 120)),
    ("n-ada", 8, 6, NotificationCompleted(("email",))),
    ("n-eve", 7, 8 * 3600 + 3, NotificationAttemptFailed("push", 1, "gone", False, 0, 0.1)),
    ("n-eve", 8, 8 * 3600 + 3, NotificationFellBack("push", "email", "not_retryable")),
]


def record(saga: str, version: int, seconds: float, event: NotificationEvent) -> dict[str, Any]:
    return {
        "event_id": f"{saga}-e{version}",
        "type": event.TYPE,
        "aggregate_type": "notification",
        "aggregate_id": saga,
        "aggregate_version": version,
        "occurred_at": T0 + timedelta(seconds=seconds),
        "correlation_id": f"c-{saga}",
        "causation_id": None,
        "actor": "notifier",
        "data": to_data(event),
    }


def write_history(settings: Settings) -> str:
    topic = ensure_topics(settings).notifications
    codec = AvroCodec()
    producer = Producer(producer_config(settings))
    for entry in HISTORY:
        saga, event = entry[0], entry[3]
        producer.produce(topic, key=saga.encode(), value=codec.encode(event.TYPE, record(*entry)))
    assert producer.flush(30) == 0
    return topic


def nexus(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [NEXUS, *args], env=environment(settings), capture_output=True, text=True, timeout=60
    )


def test_audit_prints_the_timeline_of_one_saga(settings: Settings) -> None:
    topic = write_history(settings)
    assert partition_for(b"n-ada", settings.partitions) == partition_for(b"n-eve", 6) == 2

    audited = nexus(settings, "saga", "audit", "n-ada")

    assert audited.returncode == 0, audited.stderr
    assert audited.stdout.splitlines() == [
        f"saga n-ada: 8 events on {topic} partition 2",
        "v1    2026-03-01T09:00:00.000+00:00  notification.requested        user=u-ada "
        "template=welcome routes=email>sms critical=false max_attempts=3 "
        "deadline=2026-03-01T10:00:00.000+00:00",
        "v2    2026-03-01T09:00:01.000+00:00  notification.rendered         channels=email,sms",
        "v3    2026-03-01T09:00:02.000+00:00  notification.attempt_started  "
        "channel=email attempt=1",
        "v4    2026-03-01T09:00:03.000+00:00  notification.attempt_failed   "
        "channel=email attempt=1 "
        'error="421 try later" retryable=true',
        "v5    2026-03-01T09:00:03.000+00:00  notification.retry_scheduled  "
        "channel=email attempt=2 "
        "due=2026-03-01T09:00:05.000+00:00",
        "v6    2026-03-01T09:00:05.000+00:00  notification.attempt_started  "
        "channel=email attempt=2",
        "v7    2026-03-01T09:00:06.000+00:00  notification.delivered        "
        "channel=email attempt=2 "
        'latency=120ms response="250 OK"',
        "v8    2026-03-01T09:00:06.000+00:00  notification.completed        channels=email",
        "integrity: ok (v1..v8 contiguous)",
        "status: completed (terminal)",
    ]
    assert audited.stderr == ""


def test_audit_flags_a_gap_and_a_saga_still_running(settings: Settings) -> None:
    write_history(settings)

    audited = nexus(settings, "saga", "audit", "n-eve")

    assert audited.returncode == 0, audited.stderr
    lines = audited.stdout.splitlines()
    assert [line.split()[0] for line in lines[1:-2]] == ["v1", "v2", "v4", "v5", "v6", "v7", "v8"]
    assert lines[1].endswith("routes=push>email critical=true max_attempts=3 "
                             "deadline=2026-03-01T10:00:00.000+00:00")  # fmt: skip
    assert lines[2].endswith(
        "notification.deferred         until=2026-03-01T17:00:00.000+00:00 reason=quiet_hours"
    )
    assert lines[3].endswith("notification.resumed          at=2026-03-01T17:00:00.000+00:00")
    assert lines[6].endswith("channel=push attempt=1 error=gone retryable=false")
    assert lines[7].endswith(
        "notification.fell_back        from=push to=email reason=not_retryable"
    )
    assert lines[-2:] == ["integrity: gap: v3 missing", "status: pending (not terminal)"]


def test_audit_json_prints_every_full_record_and_the_summary_on_stderr(settings: Settings) -> None:
    write_history(settings)

    audited = nexus(settings, "saga", "audit", "n-eve", "--json")

    assert audited.returncode == 0, audited.stderr
    expected = [record(*entry) for entry in HISTORY if entry[0] == "n-eve"]
    for item in expected:
        item["occurred_at"] = item["occurred_at"].isoformat()
    assert [json.loads(line) for line in audited.stdout.splitlines()] == expected
    assert audited.stderr.splitlines() == [
        "integrity: gap: v3 missing",
        "status: pending (not terminal)",
    ]


def test_audit_of_an_unknown_saga_exits_1(settings: Settings) -> None:
    topic = write_history(settings)
    partition = partition_for(b"n-nobody", settings.partitions)

    audited = nexus(settings, "saga", "audit", "n-nobody")

    assert audited.returncode == 1
    assert audited.stdout == ""
    assert audited.stderr == (
        f"nexus saga audit: no events for saga n-nobody on {topic} partition {partition}\n"
    )
