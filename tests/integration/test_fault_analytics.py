"""Fault test: SIGKILL the analytics worker twice while 200,000 events are ingested over HTTP.

Afterwards the rollups equal counts computed directly from the topic, per event type and
per minute: nothing counted twice after a redelivery, nothing lost.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from deadline import Deadline
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
BUDGET_S = 480  # every wait of the test together (deadline.py)
SPREAD_S = 1_500  # event times from 26 to 1 minutes ago: some within grace, most late


@pytest.mark.fault
@pytest.mark.timeout(BUDGET_S + 100)  # and the processes stopped, the topic read
def test_sigkill_the_analytics_worker_twice_during_200k_events(settings: Settings) -> None:
    deadline = Deadline(BUDGET_S)
    stack = with_free_ports(settings)
    ensure_topics(stack)
    migrate(stack.resolved_database_url)
    gateway = ServiceProcess("gateway", stack).start(deadline.left(60, "the gateway to start"))
    worker = ServiceProcess("analytics", stack).start(deadline.left(60, "the worker to start"))
    start = datetime.now(UTC) - timedelta(minutes=26)
    events = synthetic(EVENTS, start, SPREAD_S, seed=3)
    # Every batch must be answered 202 (the worker is not on the way of an ingest); the
    # sender's failure, with its answer, is raised here as soon as it happens.
    with ThreadPoolExecutor(1) as pool:
        sending = pool.submit(ingest_over_http, stack, events, 5_000)

        def counted(at_least: int) -> bool:
            if sending.done():
                sending.result()
            return sum(rollup_counts(stack).values()) >= at_least

        try:
            for at in KILL_AT:
                wait_until(
                    lambda a=at: counted(a), deadline.left(180, f"{at} counted"), f"{at} counted"
                )
                worker.kill()
                # the group notices the dead member first
                worker.start(timeout=deadline.left(120, "the worker to start again"))
            assert sending.result(deadline.left(300, "every batch sent")) == EVENTS
            wait_until(
                lambda: sum(rollup_counts(stack).values()) == EVENTS,
                deadline.left(300, "every event counted"),
                "every event",
            )
        finally:
            worker.stop()
            gateway.stop()
    records = [s.record for s in read_topic(stack, stack.topic("analytics"))]
    assert len(records) == EVENTS
    expected = minute_counts(records)
    assert rollup_counts(stack) == expected
    assert sum(rollup_counts(stack, "hour").values()) == EVENTS
    assert worker.starts == 1 + len(KILL_AT) and len(expected) >= 3 * 5
