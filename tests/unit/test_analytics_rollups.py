"""The rollups fold: windows, late events, sketches and generic events, without I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from projections.analytics.rollups import ANALYTICS_PROJECTION, ROLLUPS, bucket_of
from projections.analytics.sketches import hll_count, quantile
from projections.model import RowCache

T = datetime(2026, 11, 20, 9, 41, 30, tzinfo=UTC)


def event(
    kind: str, user: str | None, at: datetime, data: dict[str, Any], **extra: Any
) -> dict[str, Any]:
    received = extra.get("received", at)
    return {"type": kind, "user_id": user, "timestamp": at, "received_at": received,
            "data": data, "partition": extra.get("partition", 2)}  # fmt: skip


def fold(*events: tuple[str, dict[str, Any]]) -> RowCache:
    rows = RowCache()
    ANALYTICS_PROJECTION.fold(rows, events)
    return rows


def row(rows: RowCache, granularity: str, kind: str, bucket: datetime, part: int = 2) -> Any:
    return rows.get(ROLLUPS.name, (granularity, kind, bucket, part))


def view(page: str, user: str, at: datetime = T, ms: int = 100) -> tuple[str, dict[str, Any]]:
    data = {"page": page, "referrer": None, "duration_ms": ms}
    return "page.view", event("page.view", user, at, data)


def test_an_event_adds_to_its_minute_and_hour_rows_of_its_partition() -> None:
    rows = fold(view("/a", "u1"), view("/a", "u2", ms=300), view("/b", "u1"))
    minute = row(rows, "minute", "page.view", T.replace(second=0))
    hour = row(rows, "hour", "page.view", T.replace(minute=0, second=0))
    assert minute["count"] == hour["count"] == 3 and minute["late"] == 0
    assert minute["top"] == {"/a": 2, "/b": 1}
    assert hll_count(minute["users"]) == 2
    median = quantile(minute["hist"]["duration_ms"], 0.5)
    assert median is not None and abs(median - 100) < 3


def test_windows_at_their_edges_and_before_the_epoch_are_those_of_bucket_of() -> None:
    edges = [
        datetime(2026, 11, 20, 9, 59, 59, 999000, tzinfo=UTC),
        datetime(2026, 11, 20, 10, 0, tzinfo=UTC),
        datetime(1969, 12, 31, 23, 59, 30, tzinfo=UTC),
    ]
    for at in edges:
        rows = fold(view("/a", "u", at=at))
        for granularity in ("minute", "hour"):
            assert row(rows, granularity, "page.view", bucket_of(at, granularity))["count"] == 1
        assert len(rows.changes(ROLLUPS.name)[0]) == 2


def test_a_late_event_within_grace_lands_in_its_own_window() -> None:
    received = T + timedelta(minutes=4)
    rows = fold(("page.view", event("page.view", "u", T, {"page": "/a"}, received=received)))
    assert row(rows, "minute", "page.view", T.replace(second=0))["late"] == 0


def test_a_later_event_counts_where_it_was_received_and_is_flagged() -> None:
    received = T + timedelta(minutes=10)
    rows = fold(("page.view", event("page.view", "u", T, {"page": "/a"}, received=received)))
    assert row(rows, "minute", "page.view", T.replace(second=0)) is None
    assert row(rows, "minute", "page.view", received.replace(second=0))["late"] == 1


def test_generic_events_keep_their_own_type_and_anonymous_ones_no_user() -> None:
    data = {"properties": {"button": "save", "ms": 12}}
    rows = fold(("analytics.generic", event("button.clicked", None, T, data)))
    minute = row(rows, "minute", "button.clicked", T.replace(second=0))
    assert minute["count"] == 1 and minute["users"] == {}
