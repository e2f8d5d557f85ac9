"""Given rows and saga events, then rows: the notifications projection's fold, with no I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from aggregates.codec import to_data
from projections.catalog import PROJECTIONS
from projections.model import Event, Row, RowCache
from sagas.notification.events import (
    DigestItem,
    NotificationAttemptFailed,
    NotificationAttemptStarted,
    NotificationCompleted,
    NotificationDeferred,
    NotificationDelivered,
    NotificationDigestClosed,
    NotificationDigested,
    NotificationDigestItemAdded,
    NotificationEvent,
    NotificationFellBack,
    NotificationGivenUp,
    NotificationRendered,
    NotificationRequested,
    NotificationResumed,
    NotificationRetryScheduled,
    RenderedContent,
    Route,
)
from schemas.registry import default_registry
from schemas.timestamps import from_epoch_ms

T0 = datetime(2025, 1, 1, tzinfo=UTC)
T0_MS = int(T0.timestamp() * 1000)
PROJECTION = PROJECTIONS["notifications"]


def requested(notification_id: str = "n1", **changes: Any) -> NotificationRequested:
    fields: dict[str, Any] = {
        "notification_id": notification_id, "user_id": "u1", "template": "welcome",
        "requested_channels": None, "routes": (Route(("email", "sms")), Route(("push",))),
        "data": '{"name":"Ann"}', "idempotency_key": "k1", "critical": False,
        "requested_at": T0_MS, "deadline": T0_MS + 3_600_000, "max_attempts": 3,
        "base_delay_ms": 1000, "max_delay_ms": 60_000,
    }  # fmt: skip
    return NotificationRequested(**(fields | changes))


def envelope(saga_id: str, version: int, event: NotificationEvent) -> tuple[str, Event]:
    record = {
        "event_id": f"e-{saga_id}-{version}",
        "type": event.TYPE,
        "aggregate_type": "notification",
        "aggregate_id": saga_id,
        "aggregate_version": version,
        "occurred_at": T0 + timedelta(seconds=version),
        "correlation_id": "corr",
        "causation_id": None if version == 1 else f"e-{saga_id}-{version - 1}",
        "actor": "notification-worker",
        "data": to_data(event),
    }
    return event.TYPE, record


def saga(saga_id: str, *events: NotificationEvent, first: int = 1) -> list[tuple[str, Event]]:
    return [envelope(saga_id, first + n, event) for n, event in enumerate(events)]


def fold(events: list[tuple[str, Event]], rows: RowCache | None = None) -> RowCache:
    rows = rows or RowCache()
    PROJECTION.fold(rows, [(name, e) for name, e in events if PROJECTION.handles(name)])
    return rows


def notification(rows: RowCache, saga_id: str = "n1") -> Row:
    row = rows.get("notifications", (saga_id,))
    assert row is not None
    return row


def test_a_delivered_saga_is_completed_with_its_channels() -> None:
    rows = fold(
        saga(
            "n1",
            requested(),
            NotificationRendered((RenderedContent("email", "ref:email", 10),)),
            NotificationAttemptStarted("email", 1, "n1/email/1"),
            NotificationAttemptFailed("email", 1, "timeout", True, T0_MS, 0.5),
            NotificationRetryScheduled("email", 2, T0_MS + 1000),
            NotificationAttemptStarted("email", 2, "n1/email/2"),
            NotificationDelivered("email", 2, "250 ok", 12),
            NotificationAttemptStarted("push", 1, "n1/push/1"),
            NotificationDelivered("push", 1, "200", 5),
            NotificationCompleted(("email", "push")),
        )
    )
    assert notification(rows) == {
        "notification_id": "n1", "user_id": "u1", "template": "welcome", "status": "completed",
        "critical": False, "routes": [{"chain": ["email", "sms"]}, {"chain": ["push"]}],
        "delivered_channels": ["email", "push"], "reason": None, "idempotency_key": "k1",
        "requested_at": T0, "deferred_until": None, "completed_at": T0 + timedelta(seconds=10),
        "version": 10, "updated_at": T0 + timedelta(seconds=10),
    }  # fmt: skip


def test_every_saga_event_is_kept_in_the_history_in_version_order() -> None:
    events = saga("n1", requested(), NotificationGivenUp("no_channels"))
    circuit = {"aggregate_type": "channel", "aggregate_id": "webhook", "aggregate_version": 0}
    rows = fold([*events, ("channel.circuit_opened", circuit)])
    upserts, deletes = rows.changes("saga_events")
    assert deletes == []
    history = sorted(upserts, key=lambda row: row["version"])
    assert [(r["saga_id"], r["version"], r["type"]) for r in history] == [
        ("n1", 1, "notification.requested"),
        ("n1", 2, "notification.given_up"),
    ]
    assert history[1] == {
        "saga_id": "n1", "version": 2, "event_id": "e-n1-2", "type": "notification.given_up",
        "occurred_at": T0 + timedelta(seconds=2), "actor": "notification-worker",
        "correlation_id": "corr", "causation_id": "e-n1-1", "data": {"reason": "no_channels"},
    }  # fmt: skip


def test_deferral_and_resumption() -> None:
    until = T0_MS + 8 * 3_600_000
    rows = fold(saga("n1", requested(), NotificationDeferred(until, "quiet_hours")))
    deferred = notification(rows)
    assert (deferred["status"], deferred["reason"]) == ("deferred", "quiet_hours")
    assert deferred["deferred_until"] == from_epoch_ms(until) == T0 + timedelta(hours=8)
    fold(saga("n1", NotificationResumed(until), first=3), rows)
    resumed = notification(rows)
    assert (resumed["status"], resumed["reason"], resumed["deferred_until"]) == (
        "pending",
        None,
        None,
    )
    assert resumed["version"] == 3


def test_giving_up_keeps_what_was_delivered_and_says_why() -> None:
    rows = fold(
        saga(
            "n1",
            requested(),
            NotificationDelivered("push", 1, "200", 5),
            NotificationFellBack("email", "sms", "retries_exhausted"),
            NotificationGivenUp("sms not_retryable: bad number"),
        )
    )
    row = notification(rows)
    assert row["status"] == "given_up" and row["reason"] == "sms not_retryable: bad number"
    assert row["delivered_channels"] == ["push"]
    assert row["completed_at"] == T0 + timedelta(seconds=4) and row["version"] == 4


def test_an_event_at_or_below_the_row_version_is_not_applied_again() -> None:
    stored = notification(fold(saga("n1", requested(), NotificationGivenUp("deadline"))))
    rows = RowCache(rows={"notifications": {("n1",): stored}})
    fold(
        saga(
            "n1",
            requested(template="other"),
            NotificationDeferred(T0_MS, "quiet_hours"),
        ),
        rows,
    )
    assert rows.changes("notifications") == ([], [])


def test_a_finished_saga_keeps_its_status() -> None:
    rows = fold(saga("n1", requested(), NotificationCompleted(("email",))))
    fold(saga("n1", NotificationDeferred(T0_MS, "quiet_hours"), first=3), rows)
    row = notification(rows)
    assert (row["status"], row["deferred_until"], row["version"]) == ("completed", None, 3)


def test_events_of_an_unknown_saga_change_no_notification_row() -> None:
    rows = fold(saga("n9", NotificationDelivered("email", 1, "ok", 1), first=2))
    assert rows.changes("notifications") == ([], [])
    assert [r["saga_id"] for r in rows.changes("saga_events")[0]] == ["n9"]


def test_it_handles_every_saga_event_and_nothing_else_on_its_topic() -> None:
    names = default_registry().names()
    requests = {"notification.submitted", "notification.digest_item_submitted"}
    saga_events = {n for n in names if n.startswith("notification.")} - requests
    assert PROJECTION.topic == "notifications"
    assert {n for n in names if PROJECTION.handles(n)} == saga_events
    assert not PROJECTION.handles("channel.circuit_opened")


def test_critical_and_unkeyed_requests() -> None:
    rows = fold(saga("n2", requested("n2", critical=True, idempotency_key=None)))
    row = notification(rows, "n2")
    assert row["critical"] is True and row["idempotency_key"] is None
    assert rows.get("notifications", ("n1",)) is None


def test_a_digested_notification_names_its_digest_and_the_digest_collects_then_sends() -> None:
    item = DigestItem("n1", "activity", "Grace commented")
    member = saga("n1", requested(digest_id="d1"), NotificationDigested("d1", T0_MS, "x"))
    opened = saga("d1", requested("d1", collect_until=T0_MS), NotificationDigestItemAdded(item))
    rows = fold([*member, *opened])

    assert (notification(rows)["status"], notification(rows)["reason"]) == ("digested", "digest d1")
    assert notification(rows, "d1")["status"] == "collecting"

    closed = fold(saga("d1", NotificationDigestClosed(1), first=3), rows)
    assert (notification(closed, "d1")["status"], notification(closed, "d1")["version"]) == (
        "pending",
        3,
    )
