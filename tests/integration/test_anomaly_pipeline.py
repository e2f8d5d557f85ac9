"""Anomalies end to end: rollups built by the worker, found by its leader timer, published,
and kept in the `anomalies` read model by the same worker, with no projector running."""

from __future__ import annotations

import json
import re
import subprocess
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
from stack import NEXUS, ServiceProcess
from topic_reading import read_topic
from tracked_events import produce, tracked
from webhook_sink import wait_until

from infra.config.settings import Settings
from infra.local.service_env import environment, with_free_ports
from projections.migrations import migrate
from streams.kafka.topics import ensure_topics

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
        # Two more checks done: the second began after the one that published the spike
        # ended, and must not publish it again.
        done = checks_done(worker)
        wait_until(lambda: checks_done(worker) >= done + 2, 60, "two more anomaly checks")
        # (The traffic stops after the spike, so the open minute may rightly show a drop.)
        assert len(spikes()) == 1
        ids = [a["event_id"] for a in anomalies()]
        assert len(ids) == len(set(ids))
        assert_kept_in_the_read_model(stack, found)
    finally:
        worker.stop()
    data = found["data"]
    assert isinstance(data, dict)
    assert data["event_type"] == "page.view" and data["direction"] == "spike"
    assert data["window_start"] == now.replace(second=0, microsecond=0) - timedelta(minutes=1)
    assert data["breakdown_value"] == "/billing"
    assert data["observed"] >= SPIKE and data["expected"] < 2 * PER_MINUTE


def checks_done(worker: ServiceProcess) -> float:
    """The worker's count of anomaly checks its leader's timer completed."""
    metrics = httpx.get(f"{worker.url}/metrics", timeout=5).text
    found = re.search(r'^nexus_anomaly_checks_total\{outcome="done"\} (\S+)$', metrics, re.M)
    return float(found[1]) if found else 0.0


def stored_spikes(settings: Settings) -> list[tuple[Any, ...]]:
    with psycopg.connect(settings.resolved_database_url) as conn:
        return conn.execute(
            "SELECT event_id, event_type, window_start, breakdown_value"
            " FROM public.anomalies WHERE direction = 'spike'"
        ).fetchall()


def assert_kept_in_the_read_model(stack: Settings, found: dict[str, Any]) -> None:
    """The worker's anomalies agent stores the event (no projector runs in this test), and
    `nexus replay anomalies` rebuilds the same rows while the worker keeps going."""
    data = found["data"]
    expected = [(found["event_id"], "page.view", data["window_start"], "/billing")]
    assert wait_until(lambda: stored_spikes(stack), 30, "the spike's row") == expected
    replayed = subprocess.run(
        [NEXUS, "replay", "anomalies", "--quiet"],
        env=environment(stack),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert replayed.returncode == 0, replayed.stderr
    assert json.loads(replayed.stdout)["new_version"] == 2
    assert stored_spikes(stack) == expected
