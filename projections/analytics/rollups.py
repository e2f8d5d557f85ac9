"""The analytics read model: rollups per (granularity, event type, window, partition).

Each tracked event adds to its minute row and its hour row: a count, a late count, the
unique-user sketch (signed-in users and anonymous visitors), the top values of the type's
configured property and histograms of its numeric properties. An event's window comes from
its client timestamp while it is within the plan's grace period of receipt; a later one
counts where it was received.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from functools import cache, lru_cache
from typing import Any

from infra.config.settings import Settings
from projections.analytics.sketches import hist_bucket, hll_set, hll_slot, top_add
from projections.model import Event, Key, Projection, RowCache, Table
from schemas.registry import default_registry
from schemas.tracking_plan import GENERIC_TYPE, TrackingPlan, load_plan

ROLLUPS = Table(
    name="rollups",
    columns=(
        ("granularity", "text NOT NULL"),
        ("event_type", "text NOT NULL"),
        ("bucket", "timestamptz NOT NULL"),
        ("part", "integer NOT NULL"),
        ("count", "bigint NOT NULL"),
        ("late", "bigint NOT NULL"),
        ("users", "jsonb NOT NULL"),
        ("top", "jsonb NOT NULL"),
        ("hist", "jsonb NOT NULL"),
        ("updated_at", "timestamptz NOT NULL"),
    ),
    key=("granularity", "event_type", "bucket", "part"),
    indexes=(("granularity", "bucket"),),
)
GRANULARITIES: dict[str, timedelta] = {
    "minute": timedelta(minutes=1),
    "hour": timedelta(hours=1),
}


@cache
def plan() -> TrackingPlan:
    """The tracking plan in force for this process (read once)."""
    return load_plan(Settings().analytics_file)


@cache
def grace() -> timedelta:
    """The plan's grace period, built once: a timedelta per event cost a microsecond."""
    return timedelta(seconds=plan().grace_seconds)


def window_time(event: Event, grace: timedelta) -> tuple[datetime, bool]:
    """(the time that picks the event's windows, whether it arrived late)."""
    at, received = event["timestamp"], event["received_at"]
    if received - at > grace:
        return received, True
    return at, False


def bucket_of(at: datetime, granularity: str) -> datetime:
    if granularity == "minute":
        return at.replace(second=0, microsecond=0)
    return at.replace(minute=0, second=0, microsecond=0)


@lru_cache(maxsize=8192)
def _rows_of(kind: str, part: int, minute: int) -> tuple[Key, ...]:
    """The row keys of events of `kind` in the minute that starts `minute` * 60 s after the
    epoch: a burst of events shares a few minutes, so their keys are built once, not per event
    (datetime.replace twice per event was a fifth of the fold)."""
    at = datetime.fromtimestamp(minute * 60, UTC)
    return tuple((g, kind, bucket_of(at, g), part) for g in GRANULARITIES)


def _keys(event: Event) -> tuple[Key, ...]:
    """The event's minute and hour rows; computed once, for the prefetch and the fold."""
    keys: tuple[Key, ...] | None = event.get("_keys")
    if keys is None:
        at, late = window_time(event, grace())
        event["_late"] = late
        minute = int(at.timestamp() // 60)
        keys = event["_keys"] = _rows_of(event["type"], event["partition"], minute)
    return keys


def _track_planned(rows: RowCache, event: Event) -> None:
    _track(rows, event, event["data"])


def _track_generic(rows: RowCache, event: Event) -> None:
    """An event of a type with no schema: its `type` is the client's, its data a map."""
    _track(rows, event, event["data"]["properties"])


def _track(rows: RowCache, event: Event, values: dict[str, Any]) -> None:
    """What the event adds is worked out once, then added to each of its rows."""
    keys = _keys(event)
    late = event["_late"]
    spec = plan().rollup(event["type"])
    # An anonymous visitor counts as a user of its own (as analytics tools count them).
    visitor = event["user_id"] or event.get("anonymous_id")
    slot = hll_slot(visitor) if visitor is not None else None
    top = values.get(spec.top) if spec.top is not None else None
    buckets = [
        (name, hist_bucket(value))
        for name in spec.percentiles
        if isinstance(value := values.get(name), int | float) and not isinstance(value, bool)
    ]
    for key in keys:
        row = rows.get(ROLLUPS.name, key) or _empty(key)
        row["count"] += 1
        row["late"] += late
        if slot is not None:
            hll_set(row["users"], slot)
        if top is not None:
            top_add(row["top"], str(top))
        for name, bucket in buckets:
            histogram = row["hist"].setdefault(name, {})
            histogram[bucket] = histogram.get(bucket, 0) + 1
        row["updated_at"] = event["received_at"]
        rows.put(ROLLUPS.name, key, row)


def _empty(key: Key) -> dict[str, Any]:
    granularity, event_type, bucket, part = key
    return {
        "granularity": granularity,
        "event_type": event_type,
        "bucket": bucket,
        "part": part,
        "count": 0,
        "late": 0,
        "users": {},
        "top": {},
        "hist": {},
    }


def _touches(event: Event) -> Iterable[tuple[str, Key]]:
    return [(ROLLUPS.name, key) for key in _keys(event)]


ANALYTICS_PROJECTION = Projection(
    name="analytics",
    topic="analytics",
    tables=(ROLLUPS,),
    handlers={
        name: _track_generic if name == GENERIC_TYPE else _track_planned
        for name in default_registry().names("tracking")
    },
    touches=_touches,
    partition_scoped=True,
)
