"""Anomalies end to end: rollups built by the worker, found by its leader timer, published."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from stack import ServiceProcess
from topic_reading import read_topic
from tracked_events import produce, tracked
from webhook_sink import wait_until

from infra.service_env import with_free_ports
from infra.settings import Settings
from projections.migrations import migrate
from streams.topics import ensure_topics

HISTORY_MINUTES = 30
PER_MINUTE = 60
SPIKE = 600


def traffic(now: datetime) -> list[dict[str, object]]:
    """Steady page views for half an hour, then a spike on /billing in the last full minute."""
    minute = now.replace(second=0, microsecond=0)
    events = []
    for back in range(HISTORY_MINUTES + 1, 1, -1):
        start = minute - timedelta(minutes=back)
        for i in range(PER_MINUTE):
            at = start + timedelta(seconds=i)
            page = "/dashboard" if i % 2 else "/billing"
            events.append(tracked("page.view", f"u{i}", at, {"page": page}))
    spike_start = minute - timedelta(minutes=1)
    for i in range(SPIKE):
        at = spike_start + timedelta(milliseconds=i * 50)
        events.append(tracked("page.view", f"s{i}", at, {"page": "/billing"}))
    return events


def test_the_worker_finds_a_spike_and_publishes_it_once(settings: Settings) -> None:
    while datetime.now(UTC).second > 30:  # the spike's minute must stay the last full one
        time.sleep(1)
    stack = with_free_ports(settings)
    ensure_topics(stack)
    migrate(stack.resolved_database_url)
    now = datetime.now(UTC)
    produce(stack, iter(traffic(now)))
    worker = ServiceProcess("analytics", stack).start()
    try:

        def anomalies() -> list[dict[str, object]]:
            return [
                s.record
                for s in read_topic(stack, stack.topic("events"))
                if s.record["type"] == "analytics.anomaly_detected"
            ]

        def spikes() -> list[dict[str, object]]:
            return [a for a in anomalies() if a["data"]["direction"] == "spike"]  # type: ignore[index]

        [found] = wait_until(spikes, 60, "the spike's anomaly event")
        time.sleep(12)  # another timer tick: the same anomaly is not published again
        # (The traffic stops after the spike, so the open minute may rightly show a drop.)
        assert len(spikes()) == 1
        ids = [a["event_id"] for a in anomalies()]
        assert len(ids) == len(set(ids))
    finally:
        worker.stop()
    data = found["data"]
    assert isinstance(data, dict)
    assert data["event_type"] == "page.view" and data["direction"] == "spike"
    assert data["window_start"] == now.replace(second=0, microsecond=0) - timedelta(minutes=1)
    assert data["breakdown_value"] == "/billing"
    assert data["observed"] >= SPIKE and data["expected"] < 2 * PER_MINUTE
