"""The analytics worker (Faust) as a process: tracked events in, exact rollups out."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime

import psycopg
from stack import NEXUS, ServiceProcess
from topic_reading import read_topic
from tracked_events import (
    WINDOWS,
    configured_grace_s,
    expected_windows,
    produce,
    rollup_counts,
    rollup_windows,
    synthetic,
)
from webhook_sink import wait_until

from infra.config.settings import Settings
from infra.local.service_env import environment, with_free_ports
from projections.analytics.sketches import hist_merge, hll_count, hll_merge, quantile, top_merge
from projections.migrations import migrate
from streams.kafka.topics import ensure_topics

START = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def test_rollups_equal_the_topic_across_a_restart_and_a_replay(settings: Settings) -> None:
    stack = with_free_ports(settings)
    ensure_topics(stack)
    migrate(stack.resolved_database_url)
    worker = ServiceProcess("analytics", stack).start()
    try:
        sent = produce(stack, synthetic(3_000, START, 180))
        wait_until(lambda: sum(rollup_counts(stack).values()) == sent, 60, "rollups of all")
        worker.stop()
        worker.start()  # a clean restart rereads nothing it already counted
        sent += produce(stack, synthetic(1_000, START, 180, seed=2))
        wait_until(lambda: sum(rollup_counts(stack).values()) == sent, 60, "rollups after restart")
        replayed = subprocess.run(
            [NEXUS, "replay", "analytics", "--quiet"],
            env=environment(stack),
            capture_output=True,
            text=True,
            timeout=120,
        )  # blue/green, while the worker keeps folding
        assert replayed.returncode == 0, replayed.stderr
        assert json.loads(replayed.stdout)["new_version"] == 2
        sent += produce(stack, synthetic(500, START, 180, seed=4))
        wait_until(lambda: sum(rollup_counts(stack).values()) == sent, 60, "rollups after replay")
    finally:
        worker.stop()
    stored = read_topic(stack, stack.topic("analytics"))
    records = [s.record for s in stored]
    assert len(records) == sent
    for granularity in WINDOWS:
        expected = expected_windows(stored, configured_grace_s(stack), granularity)
        assert rollup_windows(stack, granularity) == expected, granularity
    with psycopg.connect(stack.resolved_database_url) as conn:
        rows = conn.execute(
            "SELECT users, top, hist FROM public.rollups"
            " WHERE granularity = 'hour' AND event_type = 'page.view'"
        ).fetchall()
    users = {r["user_id"] for r in records if r["type"] == "page.view"}
    assert abs(hll_count(hll_merge(r[0] for r in rows)) - len(users)) <= 0.03 * len(users)
    pages = [r for r in records if r["type"] == "page.view"]
    expected_top = sorted(
        {p: sum(1 for r in records if r["type"] == "page.view" and r["data"]["page"] == p)
         for p in {r["data"]["page"] for r in records if r["type"] == "page.view"}}.items(),
        key=lambda x: (-x[1], x[0]),
    )  # fmt: skip
    assert top_merge((r[1] for r in rows), 10) == expected_top and pages
    durations = sorted(r["data"]["duration_ms"] for r in records if r["type"] == "page.view")
    p50 = quantile(hist_merge(r[2]["duration_ms"] for r in rows), 0.5)
    assert p50 is not None and abs(p50 - durations[len(durations) // 2]) <= 0.05 * p50
