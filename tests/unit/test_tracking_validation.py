"""One analytics item against the tracking plan: every rule, by exact pointer and detail."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from schemas.codec import AvroCodec
from schemas.tracking import ItemError, TrackedEvent, TrackingValidator, validate_item
from schemas.tracking_plan import TrackingPlan
from streams.ingest import MAX_PAYLOAD_BYTES, payload_text

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
NOW_TEXT = "2026-01-01T12:00:00.000Z"
ACCEPT = TrackingPlan(unknown_types="accept")
REJECT = TrackingPlan(unknown_types="reject")
FORMS = "must be an ISO-8601 date-time with a timezone or epoch milliseconds (an integer)"
KNOWN = "app.error, auth.signed_in, feature.used, page.view"


def item(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "type": "page.view",
        "user_id": "123",
        "timestamp": "2026-01-01T11:59:00Z",
        "data": {"page": "/dashboard"},
    }
    return {k: v for k, v in {**base, **fields}.items() if v is not ...}


def accepted(value: Any, plan: TrackingPlan = ACCEPT) -> TrackedEvent:
    checked = TrackingValidator(plan).validate(value, now=NOW, source="alice", event_id="e-1")
    assert isinstance(checked, TrackedEvent), checked
    return checked


def errors(value: Any, plan: TrackingPlan = ACCEPT) -> list[tuple[str, str]]:
    checked = TrackingValidator(plan).validate(value, now=NOW, source="alice", event_id="e-1")
    assert isinstance(checked, list), checked
    return [(e.pointer, e.detail) for e in checked]


def test_a_page_view_becomes_its_record_with_the_envelope() -> None:
    event = accepted(item(data={"page": "/dashboard", "duration_ms": 1200}))
    assert event.schema == "page.view"
    assert event.record == {
        "event_id": "e-1",
        "type": "page.view",
        "user_id": "123",
        "anonymous_id": None,
        "timestamp": datetime(2026, 1, 1, 11, 59, tzinfo=UTC),
        "timestamp_defaulted": False,
        "received_at": NOW,
        "source": "alice",
        "data": {"page": "/dashboard", "referrer": None, "duration_ms": 1200},
    }
    assert event.key == "123" and event.event_id == "e-1"
    codec = AvroCodec()
    schema, decoded = codec.decode(codec.encode(event.schema, event.record))  # checked encode
    assert schema.name == "page.view" and decoded == event.record


@pytest.mark.parametrize(
    ("event_type", "data"),
    [
        ("auth.signed_in", {"method": "sso"}),
        ("feature.used", {"feature": "export", "workspace_id": "w-1", "duration_ms": 5}),
        ("app.error", {"code": "E42", "page": "/x", "message": "boom"}),
    ],
)
def test_each_planned_type_is_checked_against_its_own_schema(
    event_type: str, data: dict[str, Any]
) -> None:
    event = accepted(item(type=event_type, data=data))
    assert event.schema == event_type and event.record["data"] == data
    AvroCodec().encode(event.schema, event.record)


def test_the_clients_id_is_kept_and_an_anonymous_event_is_keyed_by_it() -> None:
    event = accepted(item(id="client-7", user_id=None))
    assert event.event_id == "client-7" and event.key == "client-7"
    assert accepted(item(user_id=...)).record["user_id"] is None


@pytest.mark.parametrize(
    "timestamp",
    [
        "2026-01-01T11:59:00Z",
        "2026-01-01T13:59:00+02:00",
        "2026-01-01T11:59:00.000+00:00",
        1767268740000,
        datetime(2026, 1, 1, 6, 59, tzinfo=timezone(timedelta(hours=-5))),
    ],
)
def test_timestamps_are_iso_8601_with_a_timezone_or_epoch_milliseconds(timestamp: Any) -> None:
    assert accepted(item(timestamp=timestamp)).record["timestamp"] == datetime(
        2026, 1, 1, 11, 59, tzinfo=UTC
    )


@pytest.mark.parametrize(
    ("timestamp", "detail"),
    [
        ("2026-01-01T11:59:00", "must have a timezone, e.g. Z or +02:00"),
        ("2026-01-01", "must have a timezone, e.g. Z or +02:00"),
        (datetime(2026, 1, 1, 11, 59), "must have a timezone, e.g. Z or +02:00"),
        ("yesterday", FORMS),
        (1767268740000.0, FORMS),
        (True, FORMS),
    ],
)  # fmt: skip
def test_a_timestamp_needs_a_timezone_and_a_known_form(timestamp: Any, detail: str) -> None:
    assert errors(item(timestamp=timestamp)) == [("/timestamp", detail)]


def test_the_future_is_tolerated_up_to_the_plans_seconds() -> None:
    assert accepted(item(timestamp="2026-01-01T12:05:00Z")).record["timestamp"] > NOW
    assert errors(item(timestamp="2026-01-01T12:05:00.001Z")) == [
        ("/timestamp", f"is 300.001 s ahead of the server clock ({NOW_TEXT}); "
                       "at most 300 s is tolerated"),
    ]  # fmt: skip
    strict = TrackingPlan(future_tolerance_seconds=0)
    assert errors(item(timestamp=1767268801000), strict) == [
        ("/timestamp", f"is 1 s ahead of the server clock ({NOW_TEXT}); at most 0 s is tolerated")
    ]


def test_events_older_than_the_retention_are_refused() -> None:
    assert accepted(item(timestamp="2025-12-02T12:00:00Z")).record["timestamp"]
    assert errors(item(timestamp="2025-12-02T11:59:59Z")) == [
        ("/timestamp", f"is 30.0 days old by the server clock ({NOW_TEXT}); "
                       "events older than 30 days are refused"),
    ]  # fmt: skip
    assert errors(item(timestamp=0), TrackingPlan(retention_days=7)) == [
        ("/timestamp", f"is 20454.5 days old by the server clock ({NOW_TEXT}); "
                       "events older than 7 days are refused"),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"type": ...}, [("/type", "is required")]),
        ({"type": ""}, [("/type", "must be a string of 1 to 100 characters")]),
        ({"type": "x" * 101}, [("/type", "must be a string of 1 to 100 characters")]),
        ({"type": 7}, [("/type", "must be a string of 1 to 100 characters")]),
        ({"user_id": ""}, [("/user_id", "must be null or a string of 1 to 200 characters")]),
        ({"user_id": "u" * 201}, [("/user_id", "must be null or a string of 1 to 200 characters")]),
        ({"user_id": 123}, [("/user_id", "must be null or a string of 1 to 200 characters")]),
        ({"id": ""}, [("/id", "must be null or a string of 1 to 128 characters")]),
        ({"id": ["x"]}, [("/id", "must be null or a string of 1 to 128 characters")]),
    ],
)
def test_envelope_fields(fields: dict[str, Any], expected: list[tuple[str, str]]) -> None:
    assert errors(item(**fields)) == expected


def test_limits_are_inclusive() -> None:
    event = accepted(item(type="t" * 100, user_id="u" * 200, id="i" * 128, data={}))
    assert event.schema == "analytics.generic" and event.key == "u" * 200


def test_anything_but_an_object_is_refused_whole() -> None:
    assert errors(["page.view"]) == [("", "must be an object")]
    assert errors("page.view") == [("", "must be an object")]


def test_every_bad_field_is_named_at_once() -> None:
    found = errors({"type": "page.view", "timestamp": "soon", "data": {"page": 3, "referer": "x",
                    "duration_ms": 1.5}, "when": 1, "a/b": 2})  # fmt: skip
    assert found == [
        ("/when", "unknown field"),
        ("/a~1b", "unknown field"),
        ("/timestamp", FORMS),
        ("/data/referer", "unknown field"),
        ("/data/page", "must be a string"),
        ("/data/duration_ms", "must be an integer"),
    ]  # fmt: skip


def test_planned_data_is_required_field_by_field() -> None:
    assert errors(item(data=...)) == [("/data/page", "is required")]
    assert errors(item(data=[])) == [("/data", "must be an object")]
    assert errors(item(type="auth.signed_in", data={"method": None})) == [
        ("/data/method", "must be a string")
    ]


def test_unknown_types_are_kept_as_generic_properties_when_the_plan_accepts_them() -> None:
    props = {"label": "Buy", "count": 3, "ratio": 0.5, "on": True, "gone": None}
    event = accepted(item(type="button.clicked", data=props))
    assert event.schema == "analytics.generic"
    assert event.record["type"] == "button.clicked"
    assert event.record["data"] == {"properties": props}
    codec = AvroCodec()
    schema, decoded = codec.decode(codec.encode(event.schema, event.record))
    assert schema.name == "analytics.generic" and decoded["data"]["properties"] == props
    assert accepted(item(type="button.clicked", data=...)).record["data"] == {"properties": {}}


def test_generic_properties_must_be_scalars() -> None:
    data = {"tags": ["a"], "nested": {"k": 1}, "nan": float("nan"), "inf": float("inf"),
            "huge": 2**63, "ok": -(2**63), "x/y~z": []}  # fmt: skip
    assert errors(item(type="button.clicked", data=data)) == [
        ("/data/tags", "must be null, a boolean, a number or a string"),
        ("/data/nested", "must be null, a boolean, a number or a string"),
        ("/data/nan", "must be a finite number"),
        ("/data/inf", "must be a finite number"),
        ("/data/huge", "must be an integer within 64 bits"),
        ("/data/x~1y~0z", "must be null, a boolean, a number or a string"),
    ]
    assert errors(item(type="button.clicked", data="x")) == [("/data", "must be an object")]


def test_unknown_types_are_refused_when_the_plan_rejects_them() -> None:
    detail = f"unknown event type; the tracking plan has {KNOWN}"
    assert errors(item(type="button.clicked", data={"tags": []}), REJECT) == [("/type", detail)]
    assert errors(item(type="analytics.generic", data=7), REJECT) == [
        ("/type", detail),
        ("/data", "must be an object"),
    ]
    assert accepted(item(), REJECT).schema == "page.view"


def test_strings_utf8_cannot_carry_are_refused() -> None:
    bad = item(type="button.clicked", data={"s": "a\ud800", "\udfff": 1})
    assert errors(bad) == [
        ("/data/s", "must be valid Unicode (no lone surrogates)"),
        ("/data/\udfff", "must be valid Unicode (no lone surrogates)"),
    ]


def test_a_resubmitted_item_keeps_its_first_receipt_time() -> None:
    first = NOW - timedelta(days=2)
    checked = TrackingValidator(ACCEPT).validate(
        item(), now=NOW, source="alice", event_id="e-2", received_at=first
    )
    assert isinstance(checked, TrackedEvent) and checked.record["received_at"] == first


def test_validate_item_is_the_one_off_form() -> None:
    checked = validate_item(item(type=""), ACCEPT, now=NOW, source="s", event_id="e")
    assert checked == [ItemError("/type", "must be a string of 1 to 100 characters")]


def test_a_refused_items_payload_is_its_json_text_cut_to_the_limit() -> None:
    assert payload_text({"type": "é", "n": [1, None]}) == '{"type":"é","n":[1,null]}'
    assert payload_text({"s": "\ud800"}) == '{"s":"\\ud800"}'
    long = payload_text({"s": "é" * MAX_PAYLOAD_BYTES})
    assert len(long.encode()) <= MAX_PAYLOAD_BYTES and long.startswith('{"s":"éé')
