"""The body of `POST /api/v1/events`, checked before anything is published.

The body is `{"events": [event, ...]}` with 1 to MAX_EVENTS events (one event is a batch of
one); an event is `{type, aggregate_id, data, event_id?, occurred_at?, causation_id?}`. The
batch is all or nothing: one refused event refuses the request, every error named by a JSON
pointer into the body (`/events/3/data/kind`).

- A type that a platform process alone writes (sagas.event_owners: `user.*`, `workspace.*`,
  `notification.*`, `channel.*`) is refused first, with 403 `event-type-owned`: no token may
  publish it, whatever else the event says.
- Anything else wrong is 422 `invalid-events`: an unknown type (not under schemas/events),
  `data` not matching the type's latest Avro schema, ids outside the gateway's id rule,
  `occurred_at` not an ISO-8601 time with a timezone, an `event_id` given twice.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gateway.dispatch import checked_id
from gateway.problems import Problem
from sagas.event_owners import owner_of
from schemas.json_input import InvalidInput, from_json
from schemas.registry import SchemaRegistry

MAX_EVENTS = 1000
MAX_TIME_CHARS = 64  # far above any ISO-8601 time; bounds what fromisoformat reads
REQUIRED = ("type", "aggregate_id", "data")
OPTIONAL_IDS = ("event_id", "causation_id")
FIELDS = frozenset((*REQUIRED, *OPTIONAL_IDS, "occurred_at"))
Errors = list[tuple[str, str]]  # (pointer within the event, what is wrong)


@dataclass(frozen=True)
class EventInput:
    """One checked event; `data` is its Avro datum, `digest` identifies what was sent."""

    type: str
    aggregate_id: str
    data: dict[str, Any]
    event_id: str | None
    occurred_at: datetime | None
    causation_id: str | None
    digest: str


def checked_events(body: Any, registry: SchemaRegistry) -> list[EventInput]:
    """The body's events, or the Problem that refuses them all (413, 403 or 422)."""
    items = _items(body)
    owned = [
        {"pointer": f"/events/{i}/type", "detail": f"{item['type']} is written only by {owner}"}
        for i, item in enumerate(items)
        if isinstance(item, dict) and isinstance(item.get("type"), str)
        if (owner := owner_of(item["type"])) is not None
    ]
    if owned:
        detail = "these event types are written only by the platform: send their commands"
        raise Problem(403, "event-type-owned", detail, errors=owned)
    known = frozenset(registry.names("events"))
    events, errors = [], _repeated_ids(items)
    for index, item in enumerate(items):
        event, item_errors = _event(item, registry, known)
        errors += [{"pointer": f"/events/{index}{p}", "detail": d} for p, d in item_errors]
        if event is not None:
            events.append(event)
    if errors:
        raise Problem(422, "invalid-events", "the events are not valid", errors=errors)
    return events


def _items(body: Any) -> list[Any]:
    if not isinstance(body, dict) or not isinstance(body.get("events"), list):
        errors = [{"pointer": "/events", "detail": "must be an array of events"}]
        raise Problem(422, "invalid-body", 'the body is {"events": [...]}', errors=errors)
    if extra := [k for k in body if k != "events"]:
        errors = [{"pointer": f"/{_escape(k)}", "detail": "unknown field"} for k in extra]
        raise Problem(422, "invalid-body", 'the body is {"events": [...]}', errors=errors)
    items: list[Any] = body["events"]
    if not items:
        raise Problem(422, "empty-batch", "the batch holds no events")
    if len(items) > MAX_EVENTS:
        detail = f"a request holds at most {MAX_EVENTS} events"
        raise Problem(413, "too-many-events", detail, max_events=MAX_EVENTS)
    return items


def _event(
    item: Any, registry: SchemaRegistry, known: frozenset[str]
) -> tuple[EventInput | None, Errors]:
    if not isinstance(item, dict):
        return None, [("", "must be an object")]
    errors: Errors = [(f"/{_escape(k)}", "unknown field") for k in item if k not in FIELDS]
    errors += [(f"/{k}", "is required") for k in REQUIRED if k not in item]
    errors += _ids(item)
    occurred_at, time_errors = _time(item.get("occurred_at"))
    errors += time_errors
    type_, data = item.get("type"), {}
    if "type" in item and (not isinstance(type_, str) or type_ not in known):
        errors.append(("/type", "is not an event type under schemas/events"))
    elif isinstance(type_, str) and "data" in item:
        data_schema = _data_schema(registry, type_)
        try:
            data = from_json(data_schema, item["data"])
        except InvalidInput as exc:
            errors += [(f"/data{e.pointer}", e.reason) for e in exc.errors]
    if errors:
        return None, errors
    return EventInput(
        type=item["type"],
        aggregate_id=item["aggregate_id"],
        data=data,
        event_id=item.get("event_id"),
        occurred_at=occurred_at,
        causation_id=item.get("causation_id"),
        digest=_digest(item),
    ), []


def _ids(item: dict[str, Any]) -> Errors:
    errors: Errors = []
    for name in ("aggregate_id", *OPTIONAL_IDS):
        if name in item and (name == "aggregate_id" or item[name] is not None):
            try:
                checked_id(item[name], f"/{name}")
            except Problem as refused:
                errors.append((f"/{name}", refused.detail))
    return errors


def _time(value: Any) -> tuple[datetime | None, Errors]:
    """`occurred_at`: absent or null means the time of receipt."""
    if value is None:
        return None, []
    wrong = [("/occurred_at", "must be an ISO-8601 date-time with a timezone")]
    if not isinstance(value, str) or len(value) > MAX_TIME_CHARS:
        return None, wrong
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        return None, wrong
    return (at, []) if at.utcoffset() is not None else (None, wrong)


def _repeated_ids(items: list[Any]) -> list[dict[str, str]]:
    first: dict[str, int] = {}
    errors = []
    for index, item in enumerate(items):
        given = item.get("event_id") if isinstance(item, dict) else None
        if not isinstance(given, str):
            continue
        if given in first:
            detail = f"repeats the event_id of /events/{first[given]}"
            errors.append({"pointer": f"/events/{index}/event_id", "detail": detail})
        first.setdefault(given, index)
    return errors


def _data_schema(registry: SchemaRegistry, event_type: str) -> Any:
    schema = registry.latest(event_type).parsed
    return next(f["type"] for f in schema["fields"] if f["name"] == "data")


def _digest(item: dict[str, Any]) -> str:
    """The same for the same event sent again, whatever the order of its keys."""
    text = json.dumps(item, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def _escape(name: Any) -> str:
    """A JSON-pointer reference token (RFC 6901)."""
    return str(name).replace("~", "~0").replace("/", "~1")
