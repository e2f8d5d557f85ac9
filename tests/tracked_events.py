"""Test helper: tracked analytics events as the ingestion path writes them to Kafka."""

from __future__ import annotations

import random
import threading
import time
import tomllib
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from itertools import islice
from typing import Any

import psycopg
from confluent_kafka import Producer
from topic_reading import Stored

from infra.config.settings import Settings
from schemas.codec import AvroCodec
from streams.kafka.config import producer_config

PAGES = ("/dashboard", "/settings", "/reports", "/billing", "/docs")


def tracked(
    event_type: str, user_id: str | None, at: datetime, data: dict[str, Any]
) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "type": event_type,
        "user_id": user_id,
        "timestamp": at,
        "received_at": at,
        "source": "test",
        "data": data,
    }


def synthetic(count: int, start: datetime, seconds: int, seed: int = 1) -> Iterator[dict[str, Any]]:
    """`count` events spread over `seconds` from `start`: page views, sign-ins, features."""
    rng = random.Random(seed)
    for i in range(count):
        at = start + timedelta(milliseconds=rng.randrange(seconds * 1000))
        user = f"user-{rng.randrange(500)}"
        roll = rng.random()
        if roll < 0.7:
            page = PAGES[min(int(rng.expovariate(1.0)), len(PAGES) - 1)]
            data = {"page": page, "referrer": None, "duration_ms": rng.randrange(50, 5000)}
            yield tracked("page.view", user, at, data)
        elif roll < 0.85:
            yield tracked("auth.signed_in", user, at, {"method": rng.choice(["password", "sso"])})
        else:
            data = {"feature": f"f{i % 7}", "workspace_id": None, "duration_ms": None}
            yield tracked("feature.used", user, at, data)


def produce(settings: Settings, events: Iterator[dict[str, Any]]) -> int:
    codec, producer = AvroCodec(), Producer(producer_config(settings))
    sent = 0
    for event in events:
        payload = codec.encode(event["type"], event)
        while True:
            try:
                producer.produce(settings.topic("analytics"), payload, key=event["user_id"])
                break
            except BufferError:
                producer.poll(0.05)
        sent += 1
        producer.poll(0)
    assert producer.flush(60) == 0
    return sent


# The reference windows below follow the documented rules (README, analytics.toml) and
# nothing of projections.analytics, so that they can disagree with it.
WINDOWS = {"minute": timedelta(minutes=1), "hour": timedelta(hours=1)}
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
Window = tuple[str, int, datetime]  # event type, partition, start of the window (UTC)
Tally = tuple[int, int]  # events, of which late


def configured_grace_s(settings: Settings) -> int:
    """`grace_seconds` as written in the plan file the stack runs with."""
    grace: int = tomllib.loads(settings.analytics_file.read_text())["grace_seconds"]
    return grace


def window_of(record: dict[str, Any], grace_s: int, granularity: str) -> tuple[datetime, bool]:
    """(the start of the record's window, whether it is late): an event received at most
    `grace_s` after its timestamp counts where its timestamp falls, a later one where it
    was received, flagged late."""
    late = record["received_at"] - record["timestamp"] > timedelta(seconds=grace_s)
    at = record["received_at"] if late else record["timestamp"]
    length = WINDOWS[granularity]
    return EPOCH + (at - EPOCH) // length * length, late


def expected_windows(
    stored: Iterable[Stored], grace_s: int, granularity: str
) -> dict[Window, Tally]:
    """What each rollup row should hold for the topic's records."""
    tally: dict[Window, Tally] = {}
    for message in stored:
        start, late = window_of(message.record, grace_s, granularity)
        key = (message.record["type"], message.partition, start)
        count, lates = tally.get(key, (0, 0))
        tally[key] = (count + 1, lates + late)
    return tally


def rollup_windows(settings: Settings, granularity: str) -> dict[Window, Tally]:
    with psycopg.connect(settings.resolved_database_url) as conn:
        rows = conn.execute(
            "SELECT event_type, part, bucket, count, late FROM public.rollups"
            " WHERE granularity = %s",
            (granularity,),
        ).fetchall()
    return {(t, p, b): (int(c), int(late)) for t, p, b, c, late in rows}


def minute_counts(records: list[dict[str, Any]], grace_s: int) -> Counter[tuple[str, datetime]]:
    """Events per (type, minute), all partitions together."""
    return Counter((r["type"], window_of(r, grace_s, "minute")[0]) for r in records)


def rollup_counts(settings: Settings, granularity: str = "minute") -> Counter[tuple[str, datetime]]:
    with psycopg.connect(settings.resolved_database_url) as conn:
        rows = conn.execute(
            "SELECT event_type, bucket, sum(count) FROM public.rollups"
            " WHERE granularity = %s GROUP BY 1, 2",
            (granularity,),
        ).fetchall()
    return Counter({(t, b): int(c) for t, b, c in rows})


def as_item(record: dict[str, Any]) -> dict[str, Any]:
    """The JSON a client would send for `record`."""
    data = {k: v for k, v in record["data"].items() if v is not None}
    return {
        "type": record["type"],
        "user_id": record["user_id"],
        "timestamp": record["timestamp"].isoformat(),
        "data": data,
    }


def ingest_over_http(
    settings: Settings,
    records: Iterator[dict[str, Any]],
    batch: int,
    rate: float,
    stop: threading.Event,
) -> int:
    """POST the records as JSON batches to the gateway, `rate` a second at most, until they
    run out or `stop` is set; every one must be accepted. Returns how many were sent."""
    from stack import api_client

    sent, began = 0, time.monotonic()
    with api_client(settings, "load", ["analytics:write", "analytics:ingest"]) as api:
        while items := [as_item(record) for record in islice(records, batch)]:
            if stop.wait(max(0.0, began + sent / rate - time.monotonic())):
                break
            sent += _post(api, items)
    return sent


def _post(api: Any, items: list[dict[str, Any]]) -> int:
    response = api.post("/api/v1/ingest/batch", json=items, headers={"Prefer": "return=minimal"})
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["accepted"] == len(items) and body["rejected"] == 0, body
    return len(items)
