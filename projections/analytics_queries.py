"""Analytics read queries for the gateway: the dashboard and one event type's series.

The rollup rows of a range are fetched as stored (bounded: types x windows x partitions)
and combined here with the sketch functions: counts add up over partitions and windows,
unique-user sketches union, top values and histograms merge. A range [start, end) holds
the windows that start in it. They read only the public views `rollups` and `anomalies`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from projections.analytics.sketches import hist_merge, hll_count, hll_merge, quantile, top_merge
from projections.queries import JsonDict, json_ready

Row = dict[str, Any]
PAGE_VIEW = "page.view"
ANOMALY_LIMIT = 20
QUANTILES = {"p50": 0.5, "p95": 0.95}

_ROLLUPS = (
    "SELECT event_type, bucket, count, late, users, top, hist FROM public.rollups"
    " WHERE granularity = %s AND bucket >= %s AND bucket < %s"
)
# Numeric columns cast to float8 so that the answer stays JSON-ready whatever their type.
_ANOMALIES = (
    "SELECT event_id, event_type, granularity, window_start, window_end, direction,"
    " expected::float8 AS expected, observed::float8 AS observed, score::float8 AS score,"
    " breakdown_property, breakdown_value, detected_at"
    " FROM public.anomalies WHERE window_start < %s AND window_end > %s"
    " ORDER BY detected_at DESC, event_id LIMIT %s"
)


async def dashboard(
    conn: AsyncConnection[Any], start: datetime, end: datetime, granularity: str, top_n: int
) -> JsonDict:
    """Totals, series, active users, top values, percentiles and anomalies of the range.

    Every per-type map is keyed by event type, in name order; `series` lists only the
    windows that have events, oldest first.
    """
    rows = await _rows(conn, _ROLLUPS + " ORDER BY event_type, bucket", (granularity, start, end))
    by_type = _grouped(rows, "event_type")
    tops = {name: _top(group, top_n) for name, group in by_type.items()}
    return {
        "total": _count(rows),
        "active_users": hll_count(hll_merge(row["users"] for row in rows)),
        "totals": {name: _count(group) for name, group in by_type.items()},
        "series": {name: _series(group) for name, group in by_type.items()},
        "top_pages": tops.get(PAGE_VIEW, []),
        "top": tops,
        "percentiles": {name: _percentiles(group) for name, group in by_type.items()},
        "anomalies": await recent_anomalies(conn, start, end),
    }


async def event_series(
    conn: AsyncConnection[Any],
    event_type: str,
    start: datetime,
    end: datetime,
    granularity: str,
    top_n: int = 10,
) -> list[JsonDict]:
    """Per window of the type that has events, oldest first: [{bucket, count, late, users,
    percentiles: {property: {p50, p95}}, top: [{value, count}]}]."""
    query = _ROLLUPS + " AND event_type = %s ORDER BY bucket"
    rows = await _rows(conn, query, (granularity, start, end, event_type))
    return [
        json_ready(
            {
                "bucket": bucket,
                "count": _count(group),
                "late": sum(row["late"] for row in group),
                "users": hll_count(hll_merge(row["users"] for row in group)),
                "percentiles": _percentiles(group),
                "top": _top(group, top_n),
            }
        )
        for bucket, group in _grouped(rows, "bucket").items()
    ]


async def recent_anomalies(
    conn: AsyncConnection[Any], start: datetime, end: datetime
) -> list[JsonDict]:
    """The newest anomalies whose window overlaps [start, end); none while the anomalies
    read model does not exist yet."""
    exists = await _rows(conn, "SELECT to_regclass('public.anomalies') IS NOT NULL AS ok", ())
    if not exists[0]["ok"]:
        return []
    return [json_ready(row) for row in await _rows(conn, _ANOMALIES, (end, start, ANOMALY_LIMIT))]


async def _rows(conn: AsyncConnection[Any], query: str, params: Any) -> list[Row]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(query, params)
        return await cur.fetchall()


def _grouped(rows: Iterable[Row], column: str) -> dict[Any, list[Row]]:
    """Rows by the column's value, in first-seen order (the query's order)."""
    groups: dict[Any, list[Row]] = {}
    for row in rows:
        groups.setdefault(row[column], []).append(row)
    return groups


def _count(rows: Iterable[Row]) -> int:
    return sum(int(row["count"]) for row in rows)


def _series(rows: list[Row]) -> list[JsonDict]:
    return [
        json_ready({"bucket": bucket, "count": _count(group)})
        for bucket, group in _grouped(rows, "bucket").items()
    ]


def _top(rows: Iterable[Row], limit: int) -> list[JsonDict]:
    return [{"value": v, "count": c} for v, c in top_merge((row["top"] for row in rows), limit)]


def _percentiles(rows: Iterable[Row]) -> dict[str, dict[str, float | None]]:
    """{property: {p50, p95}} over the rows' histograms, to within a bucket's width (~4%)."""
    by_property: dict[str, list[Mapping[str, int]]] = {}
    for row in rows:
        for name, histogram in row["hist"].items():
            by_property.setdefault(name, []).append(histogram)
    merged = {name: hist_merge(histograms) for name, histograms in sorted(by_property.items())}
    return {
        name: {label: _rounded(quantile(histogram, q)) for label, q in QUANTILES.items()}
        for name, histogram in merged.items()
    }


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 2)
