"""Load for the notification benchmark: webhook users, requests, and watching them arrive.

Requests are built and Avro-encoded before any clock starts, the way
tests/integration/test_fault_notifier.py builds them, then either produced all at once
(`produce_burst`) or each at its due time (`produce_paced`, open loop like
bench/paced_client.py). `wait_delivered` reads the sink's own arrival times.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field

import httpx
from confluent_kafka import Producer

from bench.webhook_sink import SinkReceipts
from infra.config.settings import Settings
from sagas.notification.request import submission
from schemas.codec import AvroCodec
from streams.kafka.async_producer import AsyncProducer
from streams.kafka.config import producer_config
from streams.notification_requests import request_record

TEMPLATE = "welcome"
DATA = {
    "user": {"name": "Ada", "email": "ada@example.com"},
    "app": {"name": "Nexus", "url": "https://x"},
}
WAIT = {"Prefer": "wait=15"}
POLL_SECONDS = 0.05


def create_users(settings: Settings, token: str, address: str, count: int) -> list[str]:
    """`count` users whose only channel is a webhook to `address`, visible to the notifier."""
    headers = {"Authorization": f"Bearer {token}"}
    users, position = [], ""
    base = f"http://127.0.0.1:{settings.gateway_port}"
    with httpx.Client(base_url=base, headers=headers, timeout=30) as api:
        for n in range(count):
            body = {"email": f"n{n}-{uuid.uuid4().hex[:6]}@example.com", "name": f"N{n}"}
            created = api.post("/api/v1/users", json=body, headers=WAIT)
            if created.status_code != 201:
                raise RuntimeError(f"creating a user answered {created.status_code}")
            user_id = created.json()["aggregate_id"]
            channels = {"channels": [{"channel": "webhook", "address": address}]}
            done = api.put(f"/api/v1/users/{user_id}/preferences", json=channels, headers=WAIT)
            if done.status_code != 200:
                raise RuntimeError(f"setting preferences answered {done.status_code}")
            users.append(user_id)
            position = done.json()["position"]
        # Reading after the last position waits until the users view has caught up.
        seen = api.get(f"/api/v1/users/{users[-1]}", params={"after": position})
        if seen.status_code != 200:
            raise RuntimeError(f"reading the last user answered {seen.status_code}")
    return users


@dataclass(frozen=True)
class Requests:
    """Encoded requests: notification ids in order, and (key, payload) to produce."""

    ids: list[str]
    payloads: list[tuple[str | bytes | None, bytes]]


def build_requests(users: list[str], count: int, label: str) -> Requests:
    codec, ids = AvroCodec(), []
    payloads: list[tuple[str | bytes | None, bytes]] = []
    for n in range(count):
        request = submission(
            user_id=users[n % len(users)],
            template=TEMPLATE,
            data=DATA,
            requested_by="bench",
            submitted_at=int(time.time() * 1000),
            idempotency_key=f"{label}-{uuid.uuid4().hex}",
        )
        ids.append(request.notification_id)
        payloads.append(
            (request.notification_id, codec.encode(request.TYPE, request_record(request)))
        )
    return Requests(ids, payloads)


async def _send_all(settings: Settings, requests: Requests) -> tuple[float, float]:
    producer = AsyncProducer(producer_config(settings))
    try:
        started = time.time()
        await producer.send_many(settings.topic("notification-requests"), requests.payloads)
        return started, time.time()
    finally:
        producer.close()


def produce_burst(settings: Settings, requests: Requests) -> tuple[float, float]:
    """Produce every request at once: (wall time of the first produce, of the last ack)."""
    return asyncio.run(_send_all(settings, requests))


@dataclass
class PacedSends:
    rate: float
    sent_at: list[float] = field(default_factory=list)  # time.time() of each produce()
    lag: list[float] = field(default_factory=list)  # seconds behind its due time

    @property
    def achieved_rate(self) -> float:
        if len(self.sent_at) < 2:
            return 0.0
        return (len(self.sent_at) - 1) / (self.sent_at[-1] - self.sent_at[0])


def produce_paced(settings: Settings, requests: Requests, rate: float) -> PacedSends:
    """Request i is produced at t0 + i/rate, whatever came before (an open loop)."""
    producer = Producer(producer_config(settings))
    topic, sends = settings.topic("notification-requests"), PacedSends(rate)
    t0 = time.monotonic() + 0.05
    for index, (key, value) in enumerate(requests.payloads):
        due = t0 + index / rate
        if (delay := due - time.monotonic()) > 0:
            time.sleep(delay)
        sends.lag.append(time.monotonic() - due)
        sends.sent_at.append(time.time())
        producer.produce(topic, value=value, key=key)
        producer.poll(0)
    if remaining := producer.flush(30):
        raise RuntimeError(f"{remaining} paced requests not acknowledged by Kafka")
    return sends


@dataclass
class Deliveries:
    """What the sink received for a set of notifications, by its own arrival times."""

    first: dict[str, float] = field(default_factory=dict)  # notification id -> first arrival
    receipts: int = 0  # every request the sink got for these notifications
    keys: set[str] = field(default_factory=set)  # distinct attempt keys among them

    @property
    def repeated_keys(self) -> int:
        return self.receipts - len(self.keys)


def wait_delivered(sink: SinkReceipts, ids: list[str], timeout: float) -> Deliveries:
    """Poll the sink until every id has arrived or `timeout` runs out."""
    wanted, found = set(ids), Deliveries()
    deadline = time.monotonic() + timeout
    while len(found.first) < len(wanted) and time.monotonic() < deadline:
        for receipt in sink.fetch():
            notification_id = receipt.key.split("/", 1)[0]
            if notification_id in wanted:
                found.receipts += 1
                found.keys.add(receipt.key)
                found.first.setdefault(notification_id, receipt.arrival)
        time.sleep(POLL_SECONDS)
    return found
