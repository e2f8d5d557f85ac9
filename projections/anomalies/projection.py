"""The anomalies read model: one row per `analytics.anomaly_detected` event, for the dashboard.

The event id is deterministic, so a re-detected anomaly arrives with the same id; the first
event with an id is kept (the one any alert went out for), and a replay rebuilds the same.
"""

from __future__ import annotations

from collections.abc import Iterable

from projections.anomalies.events import ANOMALY_DETECTED
from projections.model import Event, Key, Projection, RowCache, Table

ANOMALIES = Table(
    name="anomalies",
    columns=(
        ("event_id", "text NOT NULL"),
        ("event_type", "text NOT NULL"),
        ("granularity", "text NOT NULL"),
        ("window_start", "timestamptz NOT NULL"),
        ("window_end", "timestamptz NOT NULL"),
        ("direction", "text NOT NULL"),
        ("expected", "double precision NOT NULL"),
        ("observed", "double precision NOT NULL"),
        ("score", "double precision NOT NULL"),
        ("severity", "text NOT NULL"),
        ("breakdown_property", "text"),
        ("breakdown_value", "text"),
        ("breakdown_expected", "double precision"),
        ("breakdown_observed", "double precision"),
        ("detected_at", "timestamptz NOT NULL"),
    ),
    key=("event_id",),
    indexes=(("window_start",), ("event_type", "window_start")),
)
DATA_COLUMNS = ANOMALIES.column_names[1:]


def _key(event: Event) -> Key:
    return (event["event_id"],)


def _detected(rows: RowCache, event: Event) -> None:
    if rows.get(ANOMALIES.name, _key(event)) is not None:
        return
    data = event["data"]
    row = {"event_id": event["event_id"], **{name: data[name] for name in DATA_COLUMNS}}
    rows.put(ANOMALIES.name, _key(event), row)


def _touches(event: Event) -> Iterable[tuple[str, Key]]:
    return ((ANOMALIES.name, _key(event)),)


ANOMALIES_PROJECTION = Projection(
    name="anomalies",
    topic="events",
    tables=(ANOMALIES,),
    handlers={ANOMALY_DETECTED: _detected},
    touches=_touches,
)
