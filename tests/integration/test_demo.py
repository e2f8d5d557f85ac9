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

from infra.cli.demo_traffic import MIX
from infra.config.settings import Settings
from infra.local.service_env import environment
from streams.kafka.topics import ensure_topics


def demo(settings: Settings, *args: str) -> dict[str, Any]:
    done = subprocess.run(
        [NEXUS, "demo", "--seed", "7", *args],
        env=environment(settings),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    summary: dict[str, Any] = json.loads(done.stdout)
    return summary


def assert_demo_traffic(stored: list[Stored], summary: dict[str, Any], rate: float) -> None:
    expected = rate * summary["seconds"]
    assert summary["sent"] == summary["accepted"] == len(stored)
    assert (summary["rejected"], summary["failed_batches"]) == (0, 0)
    assert 0.85 * expected <= len(stored) <= 1.15 * expected
    types = Counter(s.record["type"] for s in stored)
    assert set(types) == set(MIX)
    assert types.most_common(1)[0][0] == "page.view"
    for s in stored:
        assert s.record["source"] == "demo"
        assert s.key == s.record["user_id"].encode()
        assert s.record["user_id"].startswith("demo-user-")
        assert s.record["timestamp"] <= s.record["received_at"]


def test_demo_through_the_bus_writes_about_rate_times_duration_events(settings: Settings) -> None:
    ensure_topics(settings)
    summary = demo(settings, "--rate", "200", "--duration", "5")
    assert summary["via"] == "bus" and summary["seconds"] >= 5.0
    stored = read_topic(settings, settings.topic("analytics"))
    assert_demo_traffic(stored, summary, 200.0)
    assert read_topic(settings, settings.topic("analytics-rejected")) == []


def test_demo_through_the_gateway(settings: Settings) -> None:
    settings = prepared(settings)
    with running(settings, ("gateway",)):
        summary = demo(settings, "--rate", "200", "--duration", "3", "--via", "http")
    assert summary["via"] == "http"
    assert_demo_traffic(read_topic(settings, settings.topic("analytics")), summary, 200.0)
