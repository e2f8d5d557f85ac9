"""Fault test: SIGKILL the analytics worker twice while tracked events stream in over HTTP.

Afterwards every rollup row (per event type, partition and minute, and per event type,
partition and hour) holds exactly the count and late count that the documented window rules
give for the topic's records (`tracked_events.window_of`, written apart from the worker):
nothing counted twice after a redelivery, nothing lost, nothing in another window.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from deadline import Deadline
from stack import ServiceProcess
from topic_reading import read_topic
from tracked_events import (
    WINDOWS,
    Tally,
    Window,
    expected_windows,
    ingest_over_http,
    rollup_counts,
    rollup_windows,
    synthetic,
)
from webhook_sink import wait_until

from infra.config.settings import Settings
from infra.local.service_env import with_free_ports
from projections.migrations import migrate
from streams.kafka.topics import ensure_topics

RATE = 1_000  # events a second, sent until both kills are behind: some 35,000 in all
KILLS = 2
KILL_AFTER = 5_000  # events the (re)started worker counts before it is killed
BUDGET_S = 300  # every wait of the test together (deadline.py)
# The tracking plan the stack runs with. Its grace is longer than an hour, so the events
# that count in their own windows always span the end of an hour.
GRACE_S = 5_400
PLAN = f"grace_seconds = {GRACE_S}\nfuture_tolerance_seconds = 300\nretention_days = 30\n"
SPREAD_S = 2 * 3600 + 60  # event times from 2 hours ago to 1 minute ahead: a quarter late


@pytest.mark.fault
@pytest.mark.timeout(BUDGET_S + 100)  # and the processes stopped, the topic read
def test_sigkill_the_analytics_worker_twice_mid_stream(settings: Settings, tmp_path: Path) -> None:
    deadline = Deadline(BUDGET_S)
    plan = tmp_path / "analytics.toml"
    plan.write_text(PLAN)
    stack = with_free_ports(settings).model_copy(update={"analytics_file": plan})
    ensure_topics(stack)
    migrate(stack.resolved_database_url)
    gateway = ServiceProcess("gateway", stack).start(deadline.left(60, "the gateway to start"))
    worker = ServiceProcess("analytics", stack).start(deadline.left(60, "the worker to start"))
    events = synthetic(10**7, datetime.now(UTC) - timedelta(hours=2), SPREAD_S, seed=3)
    stop = threading.Event()
    # Every batch must be answered 202 (the worker is not on the way of an ingest); the
    # sender's failure, with its answer, is raised here as soon as it happens.
    with ThreadPoolExecutor(1) as pool:
        sending = pool.submit(ingest_over_http, stack, events, 1_000, RATE, stop)

        def counted(at_least: int = 0) -> int:
            if sending.done():
                sent = sending.result()  # or the sender's failure
                assert stop.is_set(), f"the load ran out after {sent} events, before the kills"
            total = sum(rollup_counts(stack).values())
            return total if total >= at_least else 0

        try:
            for _ in range(KILLS):
                at = counted() + KILL_AFTER  # more than the worker had counted when it started
                wait_until(lambda a=at: counted(a), deadline.left(120, f"{at} counted"), f"{at}")
                worker.kill()
                # the group notices the dead member first
                worker.start(timeout=deadline.left(120, "the worker to start again"))
            stop.set()
            sent = sending.result(deadline.left(30, "the load to stop"))
            wait_until(lambda: counted(sent), deadline.left(120, "every event counted"), "all")
        finally:
            stop.set()
            worker.stop()
            gateway.stop()
    stored = read_topic(stack, stack.topic("analytics"))
    assert len(stored) == sent and worker.starts == 1 + KILLS
    for granularity in WINDOWS:
        expected = expected_windows(stored, GRACE_S, granularity)
        assert differences(rollup_windows(stack, granularity), expected) == {}, granularity
    # The load exercises both rules, and more than one hour.
    hours = expected_windows(stored, GRACE_S, "hour")
    late = sum(lates for _, lates in hours.values())
    assert 0.1 * sent < late < 0.5 * sent
    assert len({start for _, _, start in hours}) >= 2


def differences(
    found: Mapping[Window, Tally], expected: Mapping[Window, Tally]
) -> dict[Window, tuple[Tally | None, Tally | None]]:
    """(found, expected) for every window where they differ."""
    return {
        key: (found.get(key), expected.get(key))
        for key in found.keys() | expected.keys()
        if found.get(key) != expected.get(key)
    }
