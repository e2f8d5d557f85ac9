"""Test helper: tracked analytics events as the ingestion path writes them to Kafka."""

from __future__ import annotations

import random
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import psycopg
from confluent_kafka import Producer

from infra.config.settings import Settings
from projections.analytics.rollups import plan, window_time
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


def minute_counts(records: list[dict[str, Any]]) -> Counter[tuple[str, datetime]]:
    """Events per (type, minute), windowed by the rollups' rule (late ones where received)."""
    grace = plan().grace_seconds
    return Counter(
        (r["type"], window_time(r, grace)[0].replace(second=0, microsecond=0)) for r in records
    )


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


def ingest_over_http(settings: Settings, records: Iterator[dict[str, Any]], batch: int) -> int:
    """POST the records as JSON batches to the gateway; every one must be accepted."""
    from stack import api_client

    sent, items = 0, []
    with api_client(settings, "load", ["analytics:write", "analytics:ingest"]) as api:
        for record in records:
            items.append(as_item(record))
            if len(items) == batch:
                sent += _post(api, items)
                items = []
        if items:
            sent += _post(api, items)
    return sent


def _post(api: Any, items: list[dict[str, Any]]) -> int:
    response = api.post("/api/v1/ingest/batch", json=items, headers={"Prefer": "return=minimal"})
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["accepted"] == len(items) and body["rejected"] == 0, body
    return len(items)
