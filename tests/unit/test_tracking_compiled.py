"""The compiled tracking plan: JSON items it takes are exactly what the full rules make of them.

`check_json` may decline any item (the full rules then decide), but an item it takes must be
the record `validate` makes of the parsed JSON, and it must take the ordinary traffic.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from infra.cli.demo_traffic import TrafficModel, TrafficParams
from schemas.tracking import TrackedEvent, TrackingValidator
from schemas.tracking_plan import TrackingPlan

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
VALIDATOR = TrackingValidator(TrackingPlan(unknown_types="reject"))
PLANNED = list(VALIDATOR.known_types)


def both(text: str, only_for: str | None = None) -> tuple[Any, Any]:
    options: dict[str, Any] = {"now": NOW, "source": "s", "event_id": "e-1", "only_for": only_for}
    fast = VALIDATOR.check_json(text.encode(), **options)
    return fast, VALIDATOR.validate(json.loads(text), **options)


def test_every_demo_item_is_taken_as_the_full_rules_take_it() -> None:
    model = TrafficModel(TrafficParams(rate=2_000.0, incident_every=0, seed=3), NOW)
    items = model.tick(-1.0, 1.0).items
    assert len(items) > 1_000
    for item in items:
        fast, full = both(json.dumps(item))
        assert isinstance(fast, TrackedEvent), item
        assert (fast.schema, fast.record) == (full.schema, full.record)


@pytest.mark.parametrize(
    "text",
    [
        '{"event": "page.view", "data": {"page": "/"}}',  # an alias
        '{"type": "page.view", "userId": "u", "data": {"page": "/"}}',
        '{"type": "button.clicked", "data": {}}',  # unplanned
        '{"type": "page.view", "data": {"page": 5}}',
        '{"type": "page.view", "data": {"page": "/", "extra": 1}}',
        '{"type": "page.view", "data": {"page": "/", "duration_ms": 1.0}}',
        '{"type": "page.view", "data": {"page": "/", "duration_ms": 9223372036854775808}}',
        '{"type": "page.view", "data": {"page": "/", "duration_ms": true}}',
        '{"type": "page.view", "data": {}}',
        '{"type": "page.view"}',
        '{"type": "page.view", "data": null}',
        '{"type": "page.view", "data": {"page": "/"}, "user_id": ""}',
        '{"type": "page.view", "data": {"page": "/"}, "timestamp": "2026-01-01T11:00:00"}',
        '{"type": "page.view", "data": {"page": "/"}, "timestamp": "2026-01-01T12:05:01Z"}',
        '{"type": "page.view", "data": {"page": "/"}, "timestamp": 0}',
        '{"type": "page.view", "data": {"page": "/"}, "timestamp": 1767268740000.0}',
        '{"type": "page.view", "data": {"page": "/"}, "type": "app.error"}',  # the last counts
        '{"type": "page.view", "data": {"page": "/"}, "data": {"page": 1}}',
        '[{"type": "page.view", "data": {"page": "/"}}]',
    ],
)
def test_an_item_the_full_rules_refuse_or_read_otherwise_is_declined(text: str) -> None:
    fast, full = both(text)
    assert fast is None, full


def test_a_sender_tracking_only_itself_is_declined_for_another_user() -> None:
    text = '{"type": "page.view", "user_id": "bob", "data": {"page": "/"}}'
    assert both(text, only_for="alice")[0] is None
    fast, full = both(text.replace("bob", "alice"), only_for="alice")
    assert isinstance(fast, TrackedEvent) and fast.record == full.record


SCALARS = st.none() | st.booleans() | st.integers(-(2**64), 2**64) | st.floats() | st.text()
FIELDS = st.sampled_from(["page", "referrer", "duration_ms", "method", "code", "other"])
PLANNED_ITEMS = st.sampled_from([
    {"type": "page.view", "data": {"page": "/", "referrer": None, "duration_ms": 5}},
    {"type": "auth.signed_in", "data": {"method": "sso"}},
    {"type": "app.error", "data": {"code": "E1", "page": None}},
    {"type": "feature.used", "data": {"feature": "f", "workspace_id": "w"}},
])  # fmt: skip
CHANGES = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from([*PLANNED, "other"]),
        "id": st.none() | st.text(min_size=1, max_size=3) | st.text(max_size=130),
        "user_id": st.none() | st.text(max_size=3),
        "anonymous_id": st.none() | st.text(max_size=3),
        "timestamp": st.none()
        | st.integers(1_760_000_000_000, 1_770_000_000_000)
        | st.sampled_from(["2026-01-01T11:59:00Z", "2026-01-01T11:59:00", "2026-13-01T00:00Z"]),
        "data": st.dictionaries(FIELDS, SCALARS, max_size=3) | SCALARS,
        "userId": st.text(max_size=3),
    },
)
ITEMS = st.builds(lambda item, changes: {**item, **changes}, PLANNED_ITEMS, CHANGES)


@settings(max_examples=300, deadline=None)
@given(ITEMS)
def test_whatever_the_compiled_plan_takes_is_the_full_rules_record(item: dict[str, Any]) -> None:
    fast, full = both(json.dumps(item))
    if fast is not None:
        assert isinstance(full, TrackedEvent), (item, full)
        assert (fast.schema, fast.record) == (full.schema, full.record)
