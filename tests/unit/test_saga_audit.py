"""The saga audit's pure part: integrity findings, status folding and line formatting."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aggregates.codec import to_data
from infra.cli.saga_audit import (
    integrity_problems,
    json_line,
    summary_lines,
    timeline_line,
)
from sagas.notification.events import (
    NotificationDeferred,
    NotificationGivenUp,
    NotificationRequested,
    Route,
)

AT = datetime(2026, 1, 2, 3, 4, 5, 678_000, tzinfo=UTC)
REQUESTED = NotificationRequested(
    "n-1", "u-1", "welcome", None, (Route(("email",)),), "{}", None, False, 0, 60_000, 3, 1, 2
)


def record(version: int, event: Any, event_id: str | None = None) -> dict[str, Any]:
    return {
        "event_id": event_id or f"e-{version}",
        "type": event.TYPE,
        "aggregate_type": "notification",
        "aggregate_id": "n-1",
        "aggregate_version": version,
        "occurred_at": AT,
        "correlation_id": "c-1",
        "causation_id": None,
        "actor": "notifier",
        "data": to_data(event),
    }


def test_contiguous_versions_have_no_problem() -> None:
    assert integrity_problems([1, 2, 3]) == []
    assert integrity_problems([]) == []


def test_gaps_are_grouped_and_a_missing_start_is_a_gap() -> None:
    assert integrity_problems([2, 3, 6, 9]) == [
        "gap: v1 missing",
        "gap: v4..v5 missing",
        "gap: v7..v8 missing",
    ]


def test_versions_going_backwards_are_out_of_order() -> None:
    assert integrity_problems([1, 3, 2]) == ["out of order: v2 after v3"]


def test_duplicates_tell_a_redelivery_from_a_conflict() -> None:
    given_up = NotificationGivenUp("deadline")
    records = [
        record(1, REQUESTED),
        record(1, REQUESTED),
        record(2, given_up),
        record(2, given_up, event_id="other"),
    ]

    assert summary_lines(records) == [
        "integrity: duplicate: v1 written 2 times (the same event)",
        "integrity: duplicate: v2 written 2 times (2 different events)",
        "status: given_up (terminal)",
    ]


def test_unknown_types_and_undecodable_messages_are_reported() -> None:
    strange = record(2, NotificationGivenUp("x")) | {"type": "notification.teleported"}

    assert summary_lines([record(1, REQUESTED), strange], undecodable=3) == [
        "integrity: unknown type: v2 notification.teleported",
        "integrity: undecodable: 3 messages with this key skipped",
        "status: pending (not terminal)",
    ]


def test_a_deferred_status_says_until_when() -> None:
    records = [record(1, REQUESTED), record(2, NotificationDeferred(90_000, "quiet_hours"))]

    assert summary_lines(records)[-1] == (
        "status: deferred until 1970-01-01T00:01:30.000+00:00 (not terminal)"
    )


def test_timeline_quotes_values_with_spaces_quotes_or_nothing_in_them() -> None:
    line = timeline_line(record(3, NotificationGivenUp('email said "no" ')), 28)
    empty = timeline_line(record(3, NotificationGivenUp("")))

    assert line == (
        "v3    2026-01-02T03:04:05.678+00:00  notification.given_up         "
        'reason="email said \\"no\\" "'
    )
    assert empty.endswith('reason=""')


def test_json_line_is_the_whole_record_with_iso_times() -> None:
    assert json_line(record(1, REQUESTED)).startswith(
        '{"event_id": "e-1", "type": "notification.requested", "aggregate_type": "notification", '
        '"aggregate_id": "n-1", "aggregate_version": 1, "occurred_at": "2026-01-02T03:04:05.678000'
        '+00:00", "correlation_id": "c-1", "causation_id": null, "actor": "notifier", "data": {'
    )
