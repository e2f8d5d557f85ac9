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

from infra.settings import Settings
from schemas.codec import AvroCodec
from streams.kafka_config import producer_config

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
    return Counter((r["type"], r["timestamp"].replace(second=0, microsecond=0)) for r in records)


def rollup_counts(settings: Settings, granularity: str = "minute") -> Counter[tuple[str, datetime]]:
    with psycopg.connect(settings.resolved_database_url) as conn:
        rows = conn.execute(
            "SELECT event_type, bucket, sum(count) FROM public.rollups"
            " WHERE granularity = %s GROUP BY 1, 2",
            (granularity,),
        ).fetchall()
    return Counter({(t, b): int(c) for t, b, c in rows})
