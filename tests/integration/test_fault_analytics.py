"""Fault test: SIGKILL the analytics worker twice while 200,000 events are ingested over HTTP.

Afterwards the rollups equal counts computed directly from the topic, per event type and
per minute: nothing counted twice after a redelivery, nothing lost.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from stack import ServiceProcess
from topic_reading import read_topic
from tracked_events import ingest_over_http, minute_counts, rollup_counts, synthetic
from webhook_sink import wait_until

from infra.config.settings import Settings
from infra.local.service_env import with_free_ports
from projections.migrations import migrate
from streams.kafka.topics import ensure_topics

EVENTS = 200_000
KILL_AT = (40_000, 110_000)
SPREAD_S = 1_500  # event times from 26 to 1 minutes ago: some within grace, most late


def test_sigkill_the_analytics_worker_twice_during_200k_events(settings: Settings) -> None:
    stack = with_free_ports(settings)
    ensure_topics(stack)
    migrate(stack.resolved_database_url)
    gateway = ServiceProcess("gateway", stack).start()
    worker = ServiceProcess("analytics", stack).start()
    sent: list[int] = []
    start = datetime.now(UTC) - timedelta(minutes=26)
    events = synthetic(EVENTS, start, SPREAD_S, seed=3)
    producer = threading.Thread(
        target=lambda: sent.append(ingest_over_http(stack, events, batch=5_000))
    )
    producer.start()
    try:
        for at in KILL_AT:
            wait_until(lambda a=at: sum(rollup_counts(stack).values()) >= a, 180, f"{at} counted")
            worker.kill()
            worker.start(timeout=120)  # the group notices the dead member first
        producer.join(300)
        assert sent == [EVENTS]
        wait_until(lambda: sum(rollup_counts(stack).values()) == EVENTS, 300, "every event")
    finally:
        worker.stop()
        gateway.stop()
    records = [s.record for s in read_topic(stack, stack.topic("analytics"))]
    assert len(records) == EVENTS
    expected = minute_counts(records)
    assert rollup_counts(stack) == expected
    assert sum(rollup_counts(stack, "hour").values()) == EVENTS
    assert worker.starts == 1 + len(KILL_AT) and len(expected) >= 3 * 5
