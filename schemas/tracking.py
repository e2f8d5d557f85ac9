"""Checks one ingested analytics item against the tracking plan and builds its Avro record.

An item is `{"type", "user_id"?, "anonymous_id"?, "timestamp"?, "data"?, "id"?}`, with the
aliases of schemas.tracking_aliases (`event`, `userId`, `anonymousId`); a missing timestamp
is the receipt time, and the record says so (`timestamp_defaulted`). Types with a schema under
schemas/tracking/ have their `data` checked field by field; other types go into
`analytics.generic` (scalar properties only) or are refused, as the plan says.
Pure: the server clock (`now`) and a fresh event id arrive as arguments. Errors are
(JSON pointer into the item, detail) pairs naming every bad field, root being "".
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

import msgspec

from schemas.json_input import InvalidInput, from_json
from schemas.registry import SchemaRegistry, default_registry
from schemas.timestamps import EPOCH, epoch_ms, from_epoch_ms
from schemas.tracking_aliases import as_sent, unaliased
from schemas.tracking_plan import GENERIC_TYPE, TrackingPlan
from schemas.tracking_structs import ItemDecoder

MAX_TYPE, MAX_USER_ID, MAX_ID = 100, 200, 128
INGEST = "analytics:ingest"  # the scope of servers that ingest for many users
ITEM_FIELDS = ("id", "type", "user_id", "anonymous_id", "timestamp", "data")  # + ALIASES
_DAY_MS = 86_400_000
_LONG = 2**63
TIMESTAMP_FORMS = "an ISO-8601 date-time with a timezone or epoch milliseconds (an integer)"


class ItemError(NamedTuple):
    pointer: str  # into the item: "" is the item itself, "/data/page" one of its fields
    detail: str


@dataclass(frozen=True)
class TrackedEvent:
    """An item that passed: its record, ready to encode with `schema`."""

    schema: str  # the type's own schema, or analytics.generic
    record: dict[str, Any]

    @property
    def event_id(self) -> str:
        event_id: str = self.record["event_id"]
        return event_id

    @property
    def key(self) -> str:
        """The Kafka key: a user's (or an anonymous visitor's) events stay in order on one
        partition."""
        key: str = self.record["user_id"] or self.record["anonymous_id"] or self.record["event_id"]
        return key


class TrackingValidator:
    """The tracking plan's rules for one item, with each type's `data` schema at hand."""

    def __init__(self, plan: TrackingPlan, registry: SchemaRegistry | None = None) -> None:
        registry = registry or default_registry()
        self.plan = plan
        self._data_schemas = {
            name: _data_schema(registry, name) for name in registry.names("tracking")
        }
        self.known_types = tuple(sorted(n for n in self._data_schemas if n != GENERIC_TYPE))
        planned = {n: self._data_schemas[n] for n in self.known_types if len(n) <= MAX_TYPE}
        limits = {"id": MAX_ID, "user_id": MAX_USER_ID, "anonymous_id": MAX_USER_ID}
        self._compiled = ItemDecoder(planned, limits)
        self._now_ms = (EPOCH, 0)  # the last `now` and its epoch time: a batch shares one

    def check_json(
        self,
        text: bytes | msgspec.Raw,
        *,
        now: datetime,
        source: str,
        event_id: str,
        only_for: str | None = None,
    ) -> TrackedEvent | None:
        """The record of an item given as JSON text, as `validate` would make it from the
        parsed text, when the compiled plan (schemas.tracking_structs) and the checks after it
        take the item; None when they do not, and `validate` must tell the item's fate."""
        try:
            item = self._compiled.decode(text)
        except msgspec.DecodeError:  # ValidationError included
            return None
        user_id = item.user_id or only_for
        if only_for is not None and user_id != only_for:
            return None
        defaulted = item.timestamp is None
        timestamp = now if defaulted else self._timestamp(item.timestamp, now)[0]
        if timestamp is None:
            return None
        event_type = self._compiled.types[type(item)]
        envelope = (item.id or event_id, event_type, user_id, item.anonymous_id)
        data = msgspec.structs.asdict(item.data)
        return TrackedEvent(event_type, _record(*envelope, timestamp, defaulted, now, source, data))

    def validate(
        self,
        item: Any,
        *,
        now: datetime,
        source: str,
        event_id: str,
        received_at: datetime | None = None,
        only_for: str | None = None,
    ) -> TrackedEvent | list[ItemError]:
        """The item's record, or every error in it. `event_id` is used unless it has an id.

        `received_at` defaults to `now`; a resubmitted item keeps its first receipt time.
        `only_for`, a user id, is a sender who may track that user only: its items' `user_id`
        defaults to it, and naming anyone else is an error.
        """
        if not isinstance(item, dict):
            return [ItemError("", "must be an object")]
        item, sent_as, twice = unaliased(item)
        errors = [ItemError(at, "names a field also given by its other name") for at in twice]
        errors += _field_errors(item)
        user_id = item.get("user_id") or only_for
        if only_for is not None and user_id != only_for:
            errors.append(ItemError("/user_id", f"naming another user needs the scope {INGEST}"))
        received = received_at or now
        # No timestamp: the receipt time, as Segment, PostHog and Mixpanel do, flagged as such.
        defaulted = item.get("timestamp") is None
        timestamp, timestamp_errors = (
            (received, []) if defaulted else self._timestamp(item["timestamp"], now)
        )
        errors += timestamp_errors
        schema, data, data_errors = self._data(item)
        errors += data_errors + _unencodable(item, "")
        if errors or timestamp is None:
            return [e._replace(pointer=as_sent(e.pointer, sent_as)) for e in errors]
        envelope = (item.get("id") or event_id, item["type"], user_id, item.get("anonymous_id"))
        return TrackedEvent(
            schema, _record(*envelope, timestamp, defaulted, received, source, data)
        )

    def _data(self, item: dict[str, Any]) -> tuple[str, Any, list[ItemError]]:
        """(schema name, the Avro `data`, errors) for the item's type and data."""
        value = item.get("data", {})
        event_type = item.get("type")
        if not isinstance(event_type, str) or not 0 < len(event_type) <= MAX_TYPE:
            return GENERIC_TYPE, None, _object(value)  # the type's own error says enough
        if event_type in self.known_types:
            try:
                return event_type, from_json(self._data_schemas[event_type], value), []
            except InvalidInput as exc:
                return (
                    event_type,
                    None,
                    [ItemError("/data" + e.pointer, e.reason) for e in exc.errors],
                )
        if self.plan.unknown_types == "reject":
            detail = f"unknown event type; the tracking plan has {', '.join(self.known_types)}"
            return GENERIC_TYPE, None, [ItemError("/type", detail), *_object(value)]
        return GENERIC_TYPE, {"properties": value}, _properties(value)

    def _timestamp(self, value: Any, now: datetime) -> tuple[datetime | None, list[ItemError]]:
        at_ms, errors = _epoch_ms(value)
        if at_ms is None:
            return None, errors
        last, now_ms = self._now_ms  # one tuple: threads may check batches side by side
        if last is not now:
            now_ms = epoch_ms(now)
            self._now_ms = (now, now_ms)
        tolerance, retention = self.plan.future_tolerance_seconds, self.plan.retention_days
        if at_ms - now_ms > tolerance * 1000:
            ahead = _seconds(at_ms - now_ms)
            detail = f"is {ahead} s ahead of {_clock(now)}; at most {tolerance} s is tolerated"
            return None, [ItemError("/timestamp", detail)]
        if now_ms - at_ms > retention * _DAY_MS:
            age = f"{(now_ms - at_ms) / _DAY_MS:.1f}"
            detail = (
                f"is {age} days old by {_clock(now)}; events older than {retention} days are "
                "refused"
            )
            return None, [ItemError("/timestamp", detail)]
        return from_epoch_ms(at_ms), []


def validate_item(
    item: Any, plan: TrackingPlan, *, now: datetime, source: str, event_id: str
) -> TrackedEvent | list[ItemError]:
    """One-off validation; a caller checking many items keeps a TrackingValidator."""
    return TrackingValidator(plan).validate(item, now=now, source=source, event_id=event_id)


def escape(name: Any) -> str:
    """A JSON-pointer reference token (RFC 6901)."""
    return str(name).replace("~", "~0").replace("/", "~1")


def _record(
    event_id: str,
    event_type: str,
    user_id: str | None,
    anonymous_id: str | None,
    timestamp: datetime,
    defaulted: bool,
    received: datetime,
    source: str,
    data: Any,
) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "type": event_type,
        "user_id": user_id,
        "anonymous_id": anonymous_id,
        "timestamp": timestamp,
        "timestamp_defaulted": defaulted,
        "received_at": received,
        "source": source,
        "data": data,
    }


def _data_schema(registry: SchemaRegistry, name: str) -> Any:
    fields = registry.latest(name).parsed["fields"]
    return next(f["type"] for f in fields if f["name"] == "data")


def _field_errors(item: dict[str, Any]) -> list[ItemError]:
    """Unknown fields, and the plain ones of the wrong kind or length."""
    errors = [ItemError(f"/{escape(k)}", "unknown field") for k in item if k not in ITEM_FIELDS]
    errors += _text(item, "id", MAX_ID, required=False)
    errors += _text(item, "type", MAX_TYPE, required=True)
    errors += _text(item, "user_id", MAX_USER_ID, required=False)
    return errors + _text(item, "anonymous_id", MAX_USER_ID, required=False)


def _text(item: dict[str, Any], name: str, longest: int, *, required: bool) -> list[ItemError]:
    value = item.get(name)
    if value is None:
        return [ItemError(f"/{name}", "is required")] if required else []
    if isinstance(value, str) and 0 < len(value) <= longest:
        return []
    what = f"a string of 1 to {longest} characters"
    return [ItemError(f"/{name}", f"must be {what}" if required else f"must be null or {what}")]


def _epoch_ms(value: Any) -> tuple[int | None, list[ItemError]]:
    if isinstance(value, int) and not isinstance(value, bool):
        return value, []
    if isinstance(value, datetime):  # from Python callers (the EventBus), never from JSON
        return _aware_ms(value)
    if not isinstance(value, str):
        return None, [ItemError("/timestamp", f"must be {TIMESTAMP_FORMS}")]
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        return None, [ItemError("/timestamp", f"must be {TIMESTAMP_FORMS}")]
    return _aware_ms(at)


def _aware_ms(at: datetime) -> tuple[int | None, list[ItemError]]:
    if at.tzinfo is None:
        return None, [ItemError("/timestamp", "must have a timezone, e.g. Z or +02:00")]
    return epoch_ms(at), []


def _object(value: Any) -> list[ItemError]:
    return [] if isinstance(value, dict) else [ItemError("/data", "must be an object")]


def _properties(value: Any) -> list[ItemError]:
    """A generic event's properties: each a JSON scalar that Avro can hold."""
    if not isinstance(value, dict):
        return _object(value)
    errors = []
    for name, prop in value.items():
        detail = _scalar_problem(prop)
        if detail is not None:
            errors.append(ItemError(f"/data/{escape(name)}", detail))
    return errors


def _scalar_problem(value: Any) -> str | None:
    if value is None or isinstance(value, bool | str):
        return None
    if isinstance(value, int):
        return None if -_LONG <= value < _LONG else "must be an integer within 64 bits"
    if isinstance(value, float):
        return None if math.isfinite(value) else "must be a finite number"
    return "must be null, a boolean, a number or a string"


def _unencodable(value: Any, at: str) -> list[ItemError]:
    """Strings that UTF-8 cannot carry (JSON lets lone surrogates through as \\ud800)."""
    if isinstance(value, str):
        return [] if _utf8(value) else [ItemError(at, "must be valid Unicode (no lone surrogates)")]
    if isinstance(value, list):
        return [e for i, v in enumerate(value) for e in _unencodable(v, f"{at}/{i}")]
    if isinstance(value, dict):
        return [
            e
            for k, v in value.items()
            for e in (_unencodable(k, f"{at}/{escape(k)}") + _unencodable(v, f"{at}/{escape(k)}"))
        ]
    return []


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _seconds(ms: int) -> str:
    return str(ms // 1000) if ms % 1000 == 0 else f"{ms / 1000:.3f}"


def _clock(now: datetime) -> str:
    return f"the server clock ({_iso(now)})"


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
