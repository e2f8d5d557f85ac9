"""A key repeated after its saga left the notifier's horizon starts nothing new: the notifier
no longer holds the saga, but the read model does."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from confluent_kafka import Producer
from notifier_helpers import saga_events, webhook_user
from stack import api_client, prepared, running
from webhook_sink import SinkLog, wait_until

from aggregates.user.events import ChannelAddress
from infra.config.settings import Settings
from infra.local.lag import group_lag
from sagas.circuit.breaker import CircuitConfig
from sagas.notification.commands import RecordDelivery, StartNotification
from sagas.notification.request import notification_id_for
from sagas.rendering import TemplateRenderer
from sagas.runtime.contents import RenderedContents
from sagas.runtime.engine import SagaEngine, Work
from schemas.codec import AvroCodec
from streams.kafka.config import producer_config
from streams.kafka.partitioning import partition_for
from streams.notification_requests import notify
from streams.notifier.records import saga_record

DAY = 86_400_000
SERVICES = ("command-processor", "projector", "gateway", "notifier")
DATA = {"user": {"name": "Ada", "email": "ada@example.com"}, "app": {"name": "N", "url": "u"}}


@pytest.fixture(scope="module")
def stack(module_settings: Settings, sink: tuple[SinkLog, int]) -> Iterator[Settings]:
    settings = prepared(
        module_settings,
        delivery_allow_list=f"127.0.0.1:{sink[1]}",
        notification_deadline_s=60,
        notification_digest_window_s=10,
        notification_horizon_s=140,
    )
    with running(settings, SERVICES):
        yield settings


def write_old_saga(settings: Settings, saga_id: str, user_id: str, url: str) -> int:
    """A delivered saga from yesterday, as its worker wrote it; returns its event count."""
    at = int(time.time() * 1000) - DAY
    start = StartNotification(
        notification_id=saga_id, user_id=user_id, template="welcome", data=json.dumps(DATA),
        requested_at=at, deadline=at + 60_000, preferences=(ChannelAddress("webhook", url),),
        idempotency_key="old-key",
    )  # fmt: skip
    partition = partition_for(saga_id.encode(), settings.partitions)
    engine = SagaEngine(RenderedContents(TemplateRenderer()), CircuitConfig(5, 1_000))
    events = engine.run([Work(saga_id, partition, start)], at).events
    delivered = RecordDelivery("webhook", 1, "HTTP 200", 5)
    events += engine.run([Work(saga_id, partition, delivered)], at + 10).events
    codec, producer = AvroCodec(), Producer(producer_config(settings))
    for out in events:
        record = saga_record(out, datetime.fromtimestamp(at / 1000, UTC))
        value = codec.encode(out.event.TYPE, record)
        producer.produce(
            settings.topic("notifications"), value, saga_id, partition=partition, timestamp=at
        )
    assert producer.flush(30) == 0
    return len(events)


def test_a_key_repeated_after_the_horizon_is_not_sent_again(
    stack: Settings, sink: tuple[SinkLog, int]
) -> None:
    log, port = sink
    url = f"http://127.0.0.1:{port}/horizon"
    scopes = ["users:read", "users:write", "users:admin", "notifications:read", "sagas:read"]
    with api_client(stack, "ops", scopes) as api:
        user_id = webhook_user(api, url)
        old_id = notification_id_for("billing", user_id, "old-key")
        written = write_old_saga(stack, old_id, user_id, url)
        wait_until(
            lambda: api.get(f"/api/v1/notifications/{old_id}").json().get("status") == "completed",
            30,
            "the old saga in the read model",
        )

    async def ask_again_and_a_new_one() -> str:
        again = notify(
            stack, user_id, "welcome", DATA, idempotency_key="old-key", requested_by="billing"
        )
        new = notify(
            stack, user_id, "welcome", DATA, idempotency_key="new-key", requested_by="billing"
        )
        ids = await asyncio.gather(again, new)
        assert ids[0] == old_id
        return ids[1]

    new_id = asyncio.run(ask_again_and_a_new_one())
    wait_until(
        lambda: any(r.key == f"{new_id}/webhook/1" for r in log.snapshot()),
        60,
        "the new key's webhook",
    )
    # The notifier committed past both requests: a saga the repeated key started would be in
    # the log by now, its events written in the transaction that took the request.
    wait_until(lambda: group_lag(stack, "notifier") == 0, 30, "the notifier to take both")

    assert len(saga_events(stack, old_id)) == written
    assert [r.key for r in log.snapshot() if r.key and r.key.startswith(old_id)] == []
