"""EventBus on a real broker: publish validated events, subscribe by pattern, dead letters."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest
from confluent_kafka import Producer
from topic_reading import read_topic

from infra.config.settings import Settings
from schemas.codec import SchemaViolation
from streams.bus import EventBus, EventSubscriber, OwnedByCommandSide
from streams.kafka.config import producer_config
from streams.kafka.topics import ensure_topics

ACTIVITY = {"kind": "login", "subject_id": "s-1", "attributes": {"ip": "127.0.0.1"}}


async def publish_some(settings: Settings, count: int) -> list[str]:
    bus = EventBus(settings)
    try:
        sent = await asyncio.gather(
            *(bus.publish("activity.recorded", f"a-{i % 3}", ACTIVITY) for i in range(count))
        )
    finally:
        bus.close()
    return [s.event_id for s in sent]


def test_published_events_are_durable_and_keyed(settings: Settings) -> None:
    ensure_topics(settings)
    ids = asyncio.run(publish_some(settings, 30))
    stored = read_topic(settings, settings.topic("events"))
    assert sorted(s.record["event_id"] for s in stored) == sorted(ids)
    partitions = {s.key: s.partition for s in stored}
    assert len(partitions) == 3  # one partition per aggregate key, whatever the order
    assert {s.record["data"]["attributes"]["ip"] for s in stored} == {"127.0.0.1"}


def test_publish_refuses_bad_data_and_command_side_events(settings: Settings) -> None:
    ensure_topics(settings)

    async def attempt(type_: str, data: dict[str, Any]) -> None:
        bus = EventBus(settings)
        try:
            await bus.publish(type_, "x", data)
        finally:
            bus.close()

    with pytest.raises(SchemaViolation):
        asyncio.run(attempt("activity.recorded", {"kind": 1, "subject_id": "s"}))
    with pytest.raises(OwnedByCommandSide):
        asyncio.run(attempt("user.registered", {"email": "a@b.co", "name": "A"}))
    assert read_topic(settings, settings.topic("events")) == []


def test_subscribers_get_matching_events_and_garbage_is_dead_lettered(settings: Settings) -> None:
    ensure_topics(settings)
    producer = Producer(producer_config(settings))
    producer.produce(settings.topic("events"), b"\xc3\x01garbage!", key=b"k")
    assert producer.flush(10) == 0
    asyncio.run(publish_some(settings, 5))
    seen: list[str] = []
    subscriber = EventSubscriber(settings, f"{settings.topic_prefix}.test-subscriber")
    subscriber.subscribe("activity.*", lambda record: seen.append(record["event_id"]))
    subscriber.subscribe("user.*", lambda record: pytest.fail("no user events were published"))
    stop = threading.Event()
    thread = threading.Thread(target=subscriber.run, args=(stop,), daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while len(seen) < 5 and time.monotonic() < deadline:
        time.sleep(0.1)
    stop.set()
    thread.join(10)
    assert len(seen) == 5
    dead = read_topic(settings, settings.topic("deadletter"))
    assert [d.record["reason"] for d in dead] == ["unknown_fingerprint"]
    assert dead[0].record["source_offset"] == 0


def test_decorated_sync_and_async_handlers_receive_published_events(settings: Settings) -> None:
    ensure_topics(settings)
    subscriber = EventSubscriber(settings, f"{settings.topic_prefix}.test-decorated")
    plain: list[str] = []
    awaited: list[str] = []

    @subscriber.on("activity.*")
    def record_plain(record: dict[str, Any]) -> None:
        plain.append(record["event_id"])

    @subscriber.on("activity.recorded")
    async def record_awaited(record: dict[str, Any]) -> None:
        await asyncio.sleep(0.01)  # really suspended, then resumed by the subscriber's loop
        awaited.append(record["event_id"])

    @subscriber.on("user.*")
    async def never(record: dict[str, Any]) -> None:
        pytest.fail("no user events were published")

    ids = asyncio.run(publish_some(settings, 5))
    stop = threading.Event()
    thread = threading.Thread(target=subscriber.run, args=(stop,), daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while len(awaited) < 5 and time.monotonic() < deadline:
        time.sleep(0.1)
    stop.set()
    thread.join(10)

    assert sorted(plain) == sorted(awaited) == sorted(ids)
    record_plain({"event_id": "direct"})  # the decorator hands the function back unchanged
    assert plain[-1] == "direct"


def test_publish_refuses_the_sagas_events_too(settings: Settings) -> None:
    async def attempt() -> None:
        bus = EventBus(settings)
        try:
            await bus.publish("notification.delivered", "n-1", {"channel": "email"})
        finally:
            bus.close()

    with pytest.raises(OwnedByCommandSide, match="only by the notifier"):
        asyncio.run(attempt())
