"""The EventBus ingests like the HTTP API; `nexus analytics rejected|resubmit` recover items.

A plan that rejects unknown types refuses an event; once the plan accepts them, `resubmit`
ingests it, exactly once across runs, and leaves items that still fail where they were.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from stack import NEXUS
from topic_reading import read_topic

from infra.config.settings import Settings
from infra.local.service_env import environment
from schemas.tracking import ItemError
from streams.bus import EventBus
from streams.ingest import ItemRejection
from streams.kafka.topics import ensure_topics

PLAN = 'unknown_types = "{}"\nretention_days = 30\n'


def nexus(settings: Settings, *args: str) -> list[Any]:
    done = subprocess.run(
        [NEXUS, "analytics", *args],
        env=environment(settings),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def messages(settings: Settings, logical: str) -> list[tuple[str, bytes | None, dict[str, Any]]]:
    return [(s.schema, s.key, s.record) for s in read_topic(settings, settings.topic(logical))]


def test_resubmit_ingests_what_a_fixed_plan_accepts(settings: Settings, tmp_path: Path) -> None:
    plan = tmp_path / "analytics.toml"
    plan.write_text(PLAN.format("reject"))
    settings = settings.model_copy(update={"analytics_file": plan})
    ensure_topics(settings)
    at = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    clicked = {"type": "button.clicked", "user_id": "u-1", "timestamp": at.isoformat(),
               "data": {"label": "Buy"}}  # fmt: skip
    broken = {"type": "page.view", "timestamp": int(at.timestamp() * 1000), "data": {}}
    bus = EventBus(settings)
    try:
        good = {"type": "page.view", "user_id": "u-1", "timestamp": at, "data": {"page": "/"}}
        # asyncio.run closes its loop: one left open warns in whichever test collects it.
        result = asyncio.run(bus.ingest([good, clicked, broken], source="shop"))
    finally:
        bus.close()
    known = "app.error, auth.signed_in, feature.used, page.view"
    assert (result.accepted, len(result.event_ids)) == (1, 1)
    assert result.rejected == [
        ItemRejection(
            1, [ItemError("/type", f"unknown event type; the tracking plan has {known}")]
        ),
        ItemRejection(2, [ItemError("/data/page", "is required")]),
    ]
    [(schema, key, record)] = messages(settings, "analytics")
    assert (schema, key, record["source"], record["timestamp"]) == ("page.view", b"u-1", "shop", at)

    listed = nexus(settings, "rejected")
    assert [(r["source"], r["index"], json.loads(r["payload"])) for r in listed] == [
        ("shop", 1, clicked),
        ("shop", 2, broken),
    ]
    assert listed[1]["errors"] == [{"pointer": "/data/page", "detail": "is required"}]
    assert len(nexus(settings, "rejected", "--max", "1")) == 1

    plan.write_text(PLAN.format("accept"))
    counts = {"read": 1, "resubmitted": 1, "still_rejected": 0, "undecodable": 0}
    assert nexus(settings, "resubmit", "--max", "1") == [counts]
    counts = {"read": 1, "resubmitted": 0, "still_rejected": 1, "undecodable": 0}
    assert nexus(settings, "resubmit") == [counts]
    assert nexus(settings, "resubmit") == [{**counts, "read": 0, "still_rejected": 0}]

    found = messages(settings, "analytics")
    assert len(found) == 2
    [(schema, key, record)] = [m for m in found if m[2]["type"] == "button.clicked"]
    assert (schema, key) == ("analytics.generic", b"u-1")
    assert record["source"] == "shop" and record["data"] == {"properties": {"label": "Buy"}}
    assert record["received_at"] == datetime.fromisoformat(listed[0]["rejected_at"])
    assert len(messages(settings, "analytics-rejected")) == 2  # nothing refused twice
