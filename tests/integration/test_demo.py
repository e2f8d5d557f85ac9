"""`nexus demo` against a real broker: its events land on the analytics topic, all valid.

Through the EventBus (the default) and through the gateway's batch endpoint (`--via http`).
"""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from typing import Any

from stack import NEXUS, prepared, running
from topic_reading import Stored, read_topic

from infra.cli.demo import TICK_S
from infra.cli.demo_traffic import MIX, TrafficModel, TrafficParams
from infra.config.clock import utcnow
from infra.config.settings import Settings
from infra.local.service_env import environment
from streams.kafka.partitioning import partition_for
from streams.kafka.topics import ensure_topics

SEED = 7


def demo(settings: Settings, *args: str) -> dict[str, Any]:
    done = subprocess.run(
        [NEXUS, "demo", "--seed", str(SEED), *args],
        env=environment(settings),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    summary: dict[str, Any] = json.loads(done.stdout)
    return summary


def model_events(rate: float, seconds: float) -> int:
    """How many events the traffic model makes in `seconds` with the demo's seed and
    defaults: each tick's count depends on them and its clock value, not on the time of day
    (incidents, which start on whole minutes, begin after 240 s)."""
    model = TrafficModel(TrafficParams(rate=rate, seed=SEED), utcnow())
    return sum(len(model.tick(k * TICK_S, TICK_S).items) for k in range(round(seconds / TICK_S)))


def assert_demo_traffic(
    stored: list[Stored], summary: dict[str, Any], rate: float, seconds: float, partitions: int
) -> None:
    """Every event of every tick sent, accepted and stored once. How fast the platform takes
    them is bench's business (`analytics`: HTTP batch ingest events/s)."""
    assert summary["sent"] == summary["accepted"] == len(stored)
    assert (summary["rejected"], summary["failed_batches"]) == (0, 0)
    assert summary["skipped_seconds"] == 0, "the demo fell 10 s behind and skipped ticks"
    assert len(stored) == model_events(rate, seconds)
    types = Counter(s.record["type"] for s in stored)
    assert set(types) == set(MIX)
    assert types.most_common(1)[0][0] == "page.view"
    for s in stored:
        assert s.record["source"] == "demo"
        # in a collector batch, on the partition its user's key takes (the batch's key is another's)
        assert s.partition == partition_for(s.record["user_id"].encode(), partitions)
        assert s.record["user_id"].startswith("demo-user-")
        assert s.record["timestamp"] <= s.record["received_at"]


def test_demo_through_the_bus_writes_about_rate_times_duration_events(settings: Settings) -> None:
    ensure_topics(settings)
    summary = demo(settings, "--rate", "200", "--duration", "5")
    assert summary["via"] == "bus" and summary["seconds"] >= 5.0
    stored = read_topic(settings, settings.topic("analytics"))
    assert_demo_traffic(stored, summary, 200.0, 5.0, settings.partitions)
    assert read_topic(settings, settings.topic("analytics-rejected")) == []


def test_demo_through_the_gateway(settings: Settings) -> None:
    settings = prepared(settings)
    with running(settings, ("gateway",)):
        summary = demo(settings, "--rate", "200", "--duration", "3", "--via", "http")
    assert summary["via"] == "http"
    stored = read_topic(settings, settings.topic("analytics"))
    assert_demo_traffic(stored, summary, 200.0, 3.0, settings.partitions)
