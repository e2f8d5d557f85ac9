"""The anomaly watch on real PostgreSQL and Kafka: rollup rows in the live analytics schema
become one `analytics.anomaly_detected` event, which later checks do not publish again and
the analytics worker keeps in the `anomalies` read model."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.types.json import Jsonb
from stack import ServiceProcess
from test_projection_support import wait_until
from topic_reading import read_topic

from infra.config.settings import Settings
from infra.local.service_env import with_free_ports
from projections.anomalies.events import ANOMALY_DETECTED
from projections.anomalies.model import MINUTE
from projections.catalog import schema_name
from projections.migrations import migrate
from projections.versions import live_version
from sagas.event_owners import ANOMALY_WATCH
from streams.anomaly_watch import AnomalyWatch
from streams.bus import EventBus
from streams.kafka.topics import ensure_topics

NOW = datetime(2026, 1, 5, 12, 0, 30, tzinfo=UTC)  # 30 s into the spike's first minute
ONSET = NOW.replace(second=0)
PAGES = {"/home": 0.5, "/pricing": 0.3, "/docs": 0.2}


def rollup_rows() -> Iterator[tuple[Any, ...]]:
    """40 minutes of page.view and auth.signed_in at about 300 a minute over two partitions,
    then half a minute of page.view at four times the rate, the extra all on /pricing."""
    rng = random.Random(3)
    for n in range(-40, 1):
        bucket = ONSET + n * MINUTE
        for part in (0, 1):
            pages = {
                page: round(150 * share * rng.uniform(0.9, 1.1)) for page, share in PAGES.items()
            }
            if n == 0:
                pages = {page: count // 2 for page, count in pages.items()}
                pages["/pricing"] += 225
            yield row("page.view", bucket, part, pages)
            methods = {"password": round(150 * rng.uniform(0.9, 1.1))}
            yield row("auth.signed_in", bucket, part, methods if n < 0 else {"password": 75})


def row(event_type: str, bucket: datetime, part: int, top: dict[str, int]) -> tuple[Any, ...]:
    count = sum(top.values())
    return ("minute", event_type, bucket, part, count, 0, Jsonb({}), Jsonb(top), Jsonb({}), NOW)


@pytest.fixture
def rollups(settings: Settings) -> Settings:
    """Migrated, with the rows written straight into the live analytics version's table."""
    ensure_topics(settings)
    migrate(settings.resolved_database_url)
    with psycopg.connect(settings.resolved_database_url) as conn:
        version = live_version(conn, "analytics")
        assert version is not None
        table = sql.Identifier(schema_name("analytics", version), "rollups")
        with conn.cursor() as cur:
            cur.executemany(
                sql.SQL("INSERT INTO {} VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)").format(
                    table
                ),
                list(rollup_rows()),
            )
    return settings


def anomalies_on_the_topic(settings: Settings) -> list[dict[str, Any]]:
    stored = read_topic(settings, settings.topic("events"))
    return [s.record for s in stored if s.record["type"] == ANOMALY_DETECTED]


def stored_anomalies(settings: Settings) -> list[tuple[Any, ...]]:
    with psycopg.connect(settings.resolved_database_url) as conn:
        return conn.execute(
            "SELECT event_id, event_type, direction, window_start, breakdown_value"
            " FROM public.anomalies"
        ).fetchall()


def test_a_spike_is_published_once_and_lands_in_the_read_model(rollups: Settings) -> None:
    bus = EventBus(rollups, writer=ANOMALY_WATCH)
    try:
        watch = AnomalyWatch(rollups, bus)
        # asyncio.run per check closes its loop each time (a leaked one warns in a later test).
        [published] = asyncio.run(watch.check(NOW))
        assert asyncio.run(watch.check(NOW + timedelta(seconds=10))) == []

        [event] = anomalies_on_the_topic(rollups)
        assert event["event_id"] == published.event_id
        assert (event["aggregate_type"], event["aggregate_id"]) == ("analytics", "page.view")
        assert event["occurred_at"] == NOW
        data = event["data"]
        assert (data["event_type"], data["granularity"], data["direction"]) == (
            "page.view", "minute", "spike",
        )  # fmt: skip
        assert (data["window_start"], data["window_end"], data["detected_at"]) == (
            ONSET, ONSET + MINUTE, NOW,
        )  # fmt: skip
        assert 270 <= data["expected"] <= 330 and 1100 <= data["observed"] <= 1300
        assert data["score"] >= 5 and data["severity"] == "critical"
        assert (data["breakdown_property"], data["breakdown_value"]) == ("page", "/pricing")
        assert data["breakdown_observed"] - data["breakdown_expected"] >= 800

        # The worker's own checks find nothing: its clock is far past these rollups.
        worker = ServiceProcess("analytics", with_free_ports(rollups)).start()
        try:
            wait_until(lambda: stored_anomalies(rollups) != [], what="the anomalies row")
        finally:
            worker.stop()
        assert stored_anomalies(rollups) == [
            (published.event_id, "page.view", "spike", ONSET, "/pricing")
        ]
        # A watch that starts afresh (a restart, another leader) learns it from the read model.
        fresh = AnomalyWatch(rollups, bus)
        assert asyncio.run(fresh.check(NOW + timedelta(seconds=20))) == []
    finally:
        bus.close()
    assert len(anomalies_on_the_topic(rollups)) == 1
