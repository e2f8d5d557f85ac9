"""The analytics HTTP API (dashboard, per-type series, live stream) against a running gateway.

Rollup rows are written straight into the live analytics schema, built from synthetic
events with the same sketch functions the analytics worker uses; the expected figures are
computed from the events themselves, so counts and top values must match exactly, unique
users within the HyperLogLog's error and percentiles within a histogram bucket's width.
"""

from __future__ import annotations

import itertools
import json
import math
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest
from psycopg import sql
from psycopg.types.json import Jsonb
from stack import api_client, prepared, running
from test_http_api import assert_problem

from gateway.auth import TokenVerifier
from infra.config.settings import Settings
from projections import versions
from projections.analytics.rollups import GRANULARITIES, bucket_of
from projections.analytics.sketches import hist_add, hll_add, top_add
from projections.catalog import schema_name
from projections.migrations import migrate

T0 = datetime(2025, 3, 1, 12, tzinfo=UTC)
READ = ["analytics:read"]
TOP_VALUES = {
    "page.view": [f"/page-{i}" for i in range(14)],
    "feature.used": ["export", "search", "share", "invite"],
    "app.error": ["E500", "E404", "E429"],
    "auth.signed_in": ["password", "sso"],
}
WITH_DURATION = {"page.view", "feature.used"}
PARTS = 3
ROW_KEYS = ("granularity", "event_type", "bucket", "part", "count", "late")
BASE_TYPES = ["page.view", "feature.used", "app.error"]


@dataclass(frozen=True)
class Tracked:
    """One synthetic tracked event, as the analytics worker would count it."""

    type: str
    at: datetime
    user: str
    top: str
    duration_ms: int | None
    late: bool

    @property
    def part(self) -> int:
        return int(self.user[1:]) % PARTS  # keyed by user: each part sees its own users


def synthetic(
    rng: random.Random, start: datetime, seconds: int, count: int, types: Sequence[str]
) -> list[Tracked]:
    """`count` events of `types` in [start, start + seconds), skewed towards early values."""
    events = []
    for _ in range(count):
        event_type = rng.choice(types)
        values = TOP_VALUES[event_type]
        top = values[min(int(rng.expovariate(0.35)), len(values) - 1)]
        duration = rng.randint(20, 4000) if event_type in WITH_DURATION else None
        at = start + timedelta(seconds=rng.randrange(seconds))
        user = f"u{rng.randrange(500)}"
        events.append(Tracked(event_type, at, user, top, duration, rng.random() < 0.05))
    return events


def rollup_rows(events: Sequence[Tracked]) -> list[dict[str, Any]]:
    rows: dict[tuple[str, str, datetime, int], dict[str, Any]] = {}
    for event in events:
        for granularity in GRANULARITIES:
            key = (granularity, event.type, bucket_of(event.at, granularity), event.part)
            row = rows.setdefault(key, _empty_row(*key))
            row["count"] += 1
            row["late"] += event.late
            hll_add(row["users"], event.user)
            top_add(row["top"], event.top)
            if event.duration_ms is not None:
                hist_add(row["hist"].setdefault("duration_ms", {}), event.duration_ms)
    return list(rows.values())


def _empty_row(granularity: str, event_type: str, bucket: datetime, part: int) -> dict[str, Any]:
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


def insert_rollups(database_url: str, events: Sequence[Tracked]) -> None:
    """Write the events' rollup rows into the live version's table (as the worker would)."""
    columns = [*ROW_KEYS, "users", "top", "hist", "updated_at"]
    with psycopg.connect(database_url) as conn:
        version = versions.live_version(conn, "analytics")
        assert version is not None, "migrate() first"
        query = sql.SQL("INSERT INTO {}.rollups ({}) VALUES ({})").format(
            sql.Identifier(schema_name("analytics", version)),
            sql.SQL(", ").join(map(sql.Identifier, columns)),
            sql.SQL(", ").join(sql.Placeholder() * len(columns)),
        )
        with conn.cursor() as cur:
            cur.executemany(query, [_values(row) for row in rollup_rows(events)])


def _values(row: dict[str, Any]) -> tuple[Any, ...]:
    sketches = (Jsonb(row["users"]), Jsonb(row["top"]), Jsonb(row["hist"]))
    return (*(row[k] for k in ROW_KEYS), *sketches, datetime.now(UTC))


ANOMALIES_DDL = """
CREATE TABLE public.anomalies (
    event_id text PRIMARY KEY, event_type text NOT NULL, granularity text NOT NULL,
    window_start timestamptz NOT NULL, window_end timestamptz NOT NULL, direction text NOT NULL,
    expected double precision NOT NULL, observed double precision NOT NULL,
    score double precision NOT NULL, severity text NOT NULL, breakdown_property text,
    breakdown_value text, breakdown_expected double precision,
    breakdown_observed double precision, detected_at timestamptz NOT NULL
)"""


def insert_anomalies(database_url: str, anomalies: Sequence[dict[str, Any]]) -> None:
    """Rows of the public `anomalies` view (its table when no projection provides it yet)."""
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT to_regclass('public.anomalies') IS NULL").fetchone()
        if row is not None and row[0]:
            conn.execute(ANOMALIES_DDL)
        for anomaly in anomalies:
            names = sql.SQL(", ").join(map(sql.Identifier, anomaly))
            places = sql.SQL(", ").join(sql.Placeholder() * len(anomaly))
            query = sql.SQL("INSERT INTO public.anomalies ({}) VALUES ({})").format(names, places)
            conn.execute(query, tuple(anomaly.values()))


def anomaly(index: int, window_start: datetime, event_type: str = "page.view") -> dict[str, Any]:
    return {
        "event_id": f"anomaly-{index:03d}",
        "event_type": event_type,
        "granularity": "minute",
        "window_start": window_start,
        "window_end": window_start + timedelta(minutes=1),
        "direction": "spike" if index % 2 else "drop",
        "expected": 10.0 + index,
        "observed": 40.0 + index,
        "score": 3.5,
        "severity": "warning",
        "breakdown_property": "page" if index % 2 else None,
        "breakdown_value": f"/page-{index}" if index % 2 else None,
        "detected_at": window_start + timedelta(minutes=1, seconds=5),
    }


# What the figures must be, computed from the events alone.


def within(events: Sequence[Tracked], start: datetime, end: datetime, g: str) -> list[Tracked]:
    return [e for e in events if start <= bucket_of(e.at, g) < end]


def totals(events: Sequence[Tracked]) -> dict[str, int]:
    counted: dict[str, int] = {}
    for event in sorted(events, key=lambda e: e.type):
        counted[event.type] = counted.get(event.type, 0) + 1
    return counted


def ranked(values: Sequence[str], limit: int = 10) -> list[dict[str, Any]]:
    counts: dict[str, int] = {}
    for value in values:
        counts[value] = counts.get(value, 0) + 1
    order = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return [{"value": v, "count": c} for v, c in order[:limit]]


def series(events: Sequence[Tracked], granularity: str) -> list[dict[str, Any]]:
    counts: dict[datetime, int] = {}
    for event in events:
        bucket = bucket_of(event.at, granularity)
        counts[bucket] = counts.get(bucket, 0) + 1
    return [{"bucket": iso(b), "count": counts[b]} for b in sorted(counts)]


def true_quantile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(math.ceil(q * len(ordered)), 1) - 1]


def assert_quantiles(shown: dict[str, Any], values: Sequence[float]) -> None:
    """The histogram's answer lies within its bucket's width of the true quantile."""
    for label, q in (("p50", 0.5), ("p95", 0.95)):
        assert shown[label] == pytest.approx(true_quantile(values, q), rel=0.025), label


def assert_unique(estimate: int, users: set[str]) -> None:
    assert abs(estimate - len(users)) <= max(1, 0.03 * len(users)), (estimate, len(users))


def iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def sse_messages(response: httpx.Response) -> Iterator[dict[str, Any]]:
    """Server-Sent Events as {event?, data?, retry?, comments?} (the WHATWG parsing rules)."""
    message: dict[str, Any] = {}
    for line in response.iter_lines():
        if not line:
            if message:
                yield message
            message = {}
            continue
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if not field:
            message.setdefault("comments", []).append(value)
        elif field == "data" and "data" in message:
            message["data"] += "\n" + value
        else:
            message[field] = value


# The stack and its data.

HISTORIC = synthetic(random.Random(7), T0 - timedelta(minutes=10), 80 * 60, 1500, BASE_TYPES)


@pytest.fixture(scope="module")
def stack(module_settings: Settings) -> Iterator[Settings]:
    settings = prepared(module_settings)
    migrate(settings.resolved_database_url)
    insert_rollups(settings.resolved_database_url, HISTORIC)
    in_range = [anomaly(i, T0 + timedelta(minutes=i)) for i in range(22)]
    earlier = anomaly(99, T0 - timedelta(hours=3))
    insert_anomalies(settings.resolved_database_url, [*in_range, earlier])
    with running(settings, ["gateway"]):
        yield settings


@pytest.fixture(scope="module")
def api(stack: Settings) -> Iterator[httpx.Client]:
    with api_client(stack, "analyst", READ) as client:
        yield client


@pytest.fixture(scope="module")
def recent(stack: Settings) -> list[Tracked]:
    """Events of the last half hour, for the default range and the live stream."""
    now = datetime.now(UTC)
    events = synthetic(random.Random(11), now - timedelta(minutes=30), 29 * 60, 300, BASE_TYPES)
    insert_rollups(stack.resolved_database_url, events)
    return events


def token(settings: Settings, scopes: list[str]) -> str:
    verifier = TokenVerifier(
        settings.resolved_jwt_secret(), settings.jwt_issuer, settings.jwt_audience
    )
    return verifier.issue("analyst", scopes)


RANGE = {"from": iso(T0), "to": iso(T0 + timedelta(hours=1))}
QUARTER = {"from": iso(T0), "to": iso(T0 + timedelta(days=93))}


def test_dashboard_adds_up_partitions_and_windows_of_the_range(api: httpx.Client) -> None:
    response = api.get("/api/v1/analytics/dashboard", params={**RANGE, "granularity": "minute"})
    assert response.status_code == 200, response.text
    body = response.json()
    shown = within(HISTORIC, T0, T0 + timedelta(hours=1), "minute")
    assert 0 < len(shown) < len(HISTORIC)  # the range cuts off events on both sides
    assert (body["from"], body["to"], body["granularity"]) == (*RANGE.values(), "minute")
    assert body["totals"] == totals(shown)
    assert body["total"] == len(shown)
    for event_type in body["totals"]:
        of_type = [e for e in shown if e.type == event_type]
        assert body["series"][event_type] == series(of_type, "minute")
        assert body["top"][event_type] == ranked([e.top for e in of_type])
    assert body["top_pages"] == body["top"]["page.view"]
    assert len(body["top_pages"]) == 10
    assert_unique(body["active_users"], {e.user for e in shown})
    for event_type in ("page.view", "feature.used"):
        durations = [e.duration_ms for e in shown if e.type == event_type and e.duration_ms]
        assert_quantiles(body["percentiles"][event_type]["duration_ms"], durations)
    assert body["percentiles"]["app.error"] == {}


def test_dashboard_lists_the_newest_anomalies_of_the_range(api: httpx.Client) -> None:
    anomalies = api.get("/api/v1/analytics/dashboard", params=RANGE).json()["anomalies"]
    assert [a["event_id"] for a in anomalies] == [f"anomaly-{i:03d}" for i in range(21, 1, -1)]
    assert anomalies[0] == {
        "event_id": "anomaly-021",
        "event_type": "page.view",
        "granularity": "minute",
        "window_start": iso(T0 + timedelta(minutes=21)),
        "window_end": iso(T0 + timedelta(minutes=22)),
        "direction": "spike",
        "expected": 31.0,
        "observed": 61.0,
        "score": 3.5,
        "breakdown_property": "page",
        "breakdown_value": "/page-21",
        "detected_at": iso(T0 + timedelta(minutes=22, seconds=5)),
    }


def test_hour_windows_cover_the_same_events(api: httpx.Client) -> None:
    params = {"from": iso(T0 - timedelta(hours=1)), "to": iso(T0 + timedelta(hours=2))}
    body = api.get("/api/v1/analytics/dashboard", params={**params, "granularity": "hour"}).json()
    assert body["totals"] == totals(HISTORIC)
    hours = [iso(T0 - timedelta(hours=1)), iso(T0), iso(T0 + timedelta(hours=1))]
    assert [p["bucket"] for p in body["series"]["page.view"]] == hours
    assert_unique(body["active_users"], {e.user for e in HISTORIC})


def test_event_series_per_window(api: httpx.Client) -> None:
    params = {"from": iso(T0 + timedelta(minutes=5)), "to": iso(T0 + timedelta(minutes=25))}
    response = api.get("/api/v1/analytics/events/page.view", params=params)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["event_type"], body["granularity"]) == ("page.view", "minute")
    views = [e for e in HISTORIC if e.type == "page.view"]
    shown = within(views, T0 + timedelta(minutes=5), T0 + timedelta(minutes=25), "minute")
    assert [{"bucket": p["bucket"], "count": p["count"]} for p in body["series"]] == series(
        shown, "minute"
    )
    for point in body["series"]:
        bucket = [e for e in shown if iso(bucket_of(e.at, "minute")) == point["bucket"]]
        assert point["late"] == sum(e.late for e in bucket)
        assert_unique(point["users"], {e.user for e in bucket})
        assert point["top"] == ranked([e.top for e in bucket])
        durations = [e.duration_ms for e in bucket if e.duration_ms]
        assert_quantiles(point["percentiles"]["duration_ms"], durations)


def test_empty_ranges_and_types_without_events(api: httpx.Client) -> None:
    at = {"from": iso(T0), "to": iso(T0)}
    body = api.get("/api/v1/analytics/dashboard", params=at).json()
    assert body["total"] == body["active_users"] == 0
    assert body["totals"] == body["series"] == body["top"] == {} and body["top_pages"] == []
    signed_in = api.get("/api/v1/analytics/events/auth.signed_in", params=RANGE)
    assert signed_in.status_code == 200 and signed_in.json()["series"] == []


@pytest.mark.parametrize(
    ("params", "code", "mentions"),
    [
        ({"from": "yesterday"}, "invalid-range", "from"),
        ({"to": "2025-13-01T00:00:00Z"}, "invalid-range", "to"),
        ({"from": iso(T0), "to": iso(T0 - timedelta(seconds=1))}, "invalid-range", "after"),
        ({"granularity": "day"}, "invalid-granularity", "minute or hour"),
        ({"from": iso(T0), "to": iso(T0 + timedelta(days=7, seconds=1))}, "range-too-large", "7"),
        ({**QUARTER, "granularity": "hour"}, "range-too-large", "92"),
    ],
)
def test_bad_parameters_are_problems(
    api: httpx.Client, params: dict[str, str], code: str, mentions: str
) -> None:
    for path in ("/api/v1/analytics/dashboard", "/api/v1/analytics/events/page.view"):
        problem = assert_problem(api.get(path, params=params), 400, code)
        assert mentions in problem["detail"]


def test_a_week_of_minutes_and_unknown_types(api: httpx.Client) -> None:
    week = {"from": iso(T0), "to": iso(T0 + timedelta(days=7))}
    assert api.get("/api/v1/analytics/dashboard", params=week).status_code == 200
    assert_problem(api.get("/api/v1/analytics/events/user.registered"), 404, "event-type-not-found")


def test_default_range_is_the_last_hour(api: httpx.Client, recent: list[Tracked]) -> None:
    body = api.get("/api/v1/analytics/dashboard").json()
    assert body["granularity"] == "minute"
    to = datetime.fromisoformat(body["to"])
    assert to - datetime.fromisoformat(body["from"]) == timedelta(hours=1)
    assert abs(to - datetime.now(UTC)) < timedelta(seconds=30)
    assert body["totals"] == totals(recent)
    hours = api.get("/api/v1/analytics/dashboard", params={"granularity": "hour"}).json()
    assert datetime.fromisoformat(hours["to"]) - datetime.fromisoformat(hours["from"]) == (
        timedelta(days=1)
    )


def test_tokens_and_scopes(stack: Settings) -> None:
    base = f"http://127.0.0.1:{stack.gateway_port}"
    good, other = token(stack, READ), token(stack, ["users:read"])
    with httpx.Client(base_url=base, timeout=30) as http:
        for path in ("/api/v1/analytics/dashboard", "/api/v1/analytics/events/page.view"):
            assert_problem(http.get(path), 401, "missing-token")
            assert_problem(http.get(path, headers=_bearer(other)), 403, "insufficient-scope")
            # Only the stream takes a token in the query string.
            assert_problem(http.get(path, params={"access_token": good}), 401, "missing-token")
        stream = "/api/v1/analytics/stream"
        assert_problem(http.get(stream), 401, "missing-token")
        assert_problem(http.get(stream, params={"access_token": "x.y.z"}), 401, "invalid-token")
        refused = http.get(stream, params={"access_token": other})
        assert_problem(refused, 403, "insufficient-scope")
        weekly = http.get(stream, params={"access_token": good, "granularity": "week"})
        assert_problem(weekly, 400, "invalid-granularity")
        with http.stream("GET", stream, headers=_bearer(good)) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")


def _bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


def test_stream_pushes_the_dashboard_when_it_changes(
    stack: Settings, recent: list[Tracked]
) -> None:
    url = f"http://127.0.0.1:{stack.gateway_port}/api/v1/analytics/stream"
    params = {"access_token": token(stack, READ)}
    with httpx.stream("GET", url, params=params, timeout=30) as response:
        assert response.status_code == 200
        assert response.headers["cache-control"] == "no-store"
        messages = sse_messages(response)
        assert next(messages) == {"retry": "2000"}
        first = next(messages)
        assert first["event"] == "dashboard"
        body = json.loads(first["data"])
        assert body["totals"] == totals(recent) and body["granularity"] == "minute"
        assert next(messages) == {"comments": ["heartbeat"]}  # nothing changed
        five_minutes_ago = datetime.now(UTC) - timedelta(minutes=5)
        signed_in = synthetic(random.Random(3), five_minutes_ago, 120, 9, ["auth.signed_in"])
        insert_rollups(stack.resolved_database_url, signed_in)
        # Heartbeats until the stream's next check, then the new figures and nothing else.
        # (How soon is not asserted here: the stream checks every few seconds, and the
        # freshness of the dashboard's figures is bench's `analytics`.)
        following = itertools.islice(messages, 20)
        changed = next((m for m in following if m != {"comments": ["heartbeat"]}), None)
        assert changed is not None, "no new figures in the next 20 messages (~60 s of checks)"
        assert changed["event"] == "dashboard", changed
        totals_now = json.loads(changed["data"])["totals"]
        assert totals_now == totals([*recent, *signed_in])
