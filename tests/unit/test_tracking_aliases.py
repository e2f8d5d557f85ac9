"""Ingestion as analytics clients send it: aliases and a missing timestamp (issue 12, part 4)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from schemas.codec import AvroCodec
from schemas.tracking import TrackedEvent, TrackingValidator
from schemas.tracking_aliases import ALIASES, as_sent
from schemas.tracking_plan import TrackingPlan

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
VISION = {"type": "page.view", "userId": "user123", "data": {"page": "/dashboard"}}


def check(item: Any, only_for: str | None = None) -> TrackedEvent | list[tuple[str, str]]:
    validator = TrackingValidator(TrackingPlan())
    checked = validator.validate(item, now=NOW, source="s", event_id="e-1", only_for=only_for)
    return (
        checked if isinstance(checked, TrackedEvent) else [(e.pointer, e.detail) for e in checked]
    )


def test_the_visions_example_is_taken_as_written_and_stamped_with_its_receipt_time() -> None:
    event = check(VISION, only_for="user123")
    assert isinstance(event, TrackedEvent)
    assert event.record["user_id"] == "user123" and event.key == "user123"
    assert event.record["timestamp"] == event.record["received_at"] == NOW
    assert event.record["timestamp_defaulted"] is True
    codec = AvroCodec()
    _, decoded = codec.decode(codec.encode(event.schema, event.record))  # a checked encode
    assert decoded["timestamp_defaulted"] is True and decoded["data"]["page"] == "/dashboard"


def test_a_timestamp_given_is_the_clients_and_not_flagged() -> None:
    event = check({**VISION, "timestamp": "2026-01-01T11:59:00Z"}, only_for="user123")
    assert isinstance(event, TrackedEvent) and event.record["timestamp_defaulted"] is False
    assert event.record["timestamp"] == NOW - timedelta(minutes=1)


def test_a_null_timestamp_is_a_missing_one() -> None:
    event = check({**VISION, "timestamp": None}, only_for="user123")
    assert isinstance(event, TrackedEvent) and event.record["timestamp_defaulted"] is True


def test_a_resubmitted_item_without_timestamp_keeps_its_first_receipt_time() -> None:
    first = NOW - timedelta(hours=2)
    checked = TrackingValidator(TrackingPlan()).validate(
        VISION, now=NOW, source="s", event_id="e-1", received_at=first
    )
    assert isinstance(checked, TrackedEvent) and checked.record["timestamp"] == first


@pytest.mark.parametrize(("alias", "name"), sorted(ALIASES.items()))
def test_each_alias_stands_for_the_plans_field(alias: str, name: str) -> None:
    value = "page.view" if name == "type" else "v-1"
    plain: dict[str, Any] = {"type": "page.view", "data": {"page": "/"}, name: value}
    aliased = {**{k: v for k, v in plain.items() if k != name}, alias: value}
    assert isinstance(check(plain), TrackedEvent) and check(aliased) == check(plain)


def test_naming_another_user_by_alias_needs_the_ingest_scope_and_points_at_the_alias() -> None:
    assert check(VISION, only_for="mallory") == [
        ("/userId", "naming another user needs the scope analytics:ingest")
    ]


def test_an_alias_beside_its_plan_name_is_refused_at_the_alias() -> None:
    errors = check({**VISION, "user_id": "user123"})
    assert errors == [("/userId", "names a field also given by its other name")]


def test_errors_in_aliased_fields_point_where_the_client_wrote_them() -> None:
    errors = check({"event": "", "anonymousId": 7, "data": {"page": "/"}})
    assert isinstance(errors, list)
    assert ("/event", "must be a string of 1 to 100 characters") in errors
    assert ("/anonymousId", "must be null or a string of 1 to 200 characters") in errors
    assert as_sent("/data/page", {"user_id": "userId"}) == "/data/page"


def test_an_anonymous_visitor_is_kept_apart_from_users_and_keys_its_events() -> None:
    event = check({"event": "page.view", "anonymousId": "anon-7", "data": {"page": "/"}})
    assert isinstance(event, TrackedEvent)
    assert event.record["user_id"] is None and event.record["anonymous_id"] == "anon-7"
    assert event.key == "anon-7"
    signed_in = check({**VISION, "anonymousId": "anon-7"}, only_for="user123")
    assert isinstance(signed_in, TrackedEvent) and signed_in.key == "user123"
    assert signed_in.record["anonymous_id"] == "anon-7"
