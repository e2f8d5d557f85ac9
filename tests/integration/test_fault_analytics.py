"""Fault test: SIGKILL the analytics worker twice while 200,000 events are ingested.

Afterwards the rollups equal counts computed directly from the topic, per event type and
per minute: nothing counted twice after a redelivery, nothing lost.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime

from stack import ServiceProcess
from topic_reading import read_topic
from tracked_events import minute_counts, produce, rollup_counts, synthetic
from webhook_sink import wait_until

from infra.service_env import with_free_ports
from infra.settings import Settings
from projections.migrations import migrate
from streams.topics import ensure_topics

EVENTS = 200_000
KILL_AT = (40_000, 110_000)
START = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def test_sigkill_the_analytics_worker_twice_during_200k_events(settings: Settings) -> None:
    stack = with_free_ports(settings)
    ensure_topics(stack)
    migrate(stack.resolved_database_url)
    worker = ServiceProcess("analytics", stack).start()
    sent: list[int] = []
    producer = threading.Thread(
        target=lambda: sent.append(produce(stack, synthetic(EVENTS, START, 1_800, seed=3)))
    )
    producer.start()
    try:
        for at in KILL_AT:
            wait_until(lambda a=at: sum(rollup_counts(stack).values()) >= a, 180, f"{at} counted")
            worker.kill()
            worker.start()
        producer.join(300)
        assert sent == [EVENTS]
        wait_until(lambda: sum(rollup_counts(stack).values()) == EVENTS, 300, "every event")
    finally:
        worker.stop()
    records = [s.record for s in read_topic(stack, stack.topic("analytics"))]
    assert len(records) == EVENTS
    expected = minute_counts(records)
    assert rollup_counts(stack) == expected
    assert sum(rollup_counts(stack, "hour").values()) == EVENTS
    assert worker.starts == 1 + len(KILL_AT) and len(expected) == 90  # 3 types x 30 minutes
