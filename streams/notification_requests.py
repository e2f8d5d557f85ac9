"""Publishing notification requests: the `notify()` helper and what HTTP and workflows share.

A request is durable once Kafka acknowledged it on the notification-requests topic, keyed
by notification id, so every request for one notification reaches the same saga worker.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from aggregates import codec as data_codec
from infra.config.clock import utcnow
from infra.config.settings import Settings
from sagas.notification.request import NotificationSubmitted, submission
from schemas.codec import AvroCodec
from schemas.timestamps import epoch_ms
from streams.kafka.async_producer import AsyncProducer
from streams.kafka.config import producer_config

Record = dict[str, Any]


def request_record(
    request: NotificationSubmitted,
    *,
    correlation_id: str | None = None,
    causation_id: str | None = None,
    occurred_at: datetime | None = None,
) -> Record:
    """The Avro record of a request, with its event envelope."""
    return {
        "event_id": str(uuid.uuid4()),
        "type": request.TYPE,
        "aggregate_type": "notification",
        "aggregate_id": request.notification_id,
        "aggregate_version": 0,  # a request, not a saga event: the saga versions its own
        "occurred_at": occurred_at or utcnow(),
        "correlation_id": correlation_id or str(uuid.uuid4()),
        "causation_id": causation_id,
        "actor": request.requested_by,
        "data": data_codec.to_data(request),
    }


class NotificationRequests:
    """Sends requests to the notification-requests topic; returns once they are durable."""

    def __init__(self, settings: Settings, producer: AsyncProducer, codec: AvroCodec) -> None:
        self.topic = settings.topic("notification-requests")
        self.producer, self.codec = producer, codec

    async def submit(self, request: NotificationSubmitted, **envelope: Any) -> Record:
        """`envelope`: correlation_id, causation_id, occurred_at. Raises LogUnavailable."""
        record = request_record(request, **envelope)
        payload = self.codec.encode(request.TYPE, record)
        await self.producer.send(self.topic, payload, key=request.notification_id)
        return record


async def notify(
    settings: Settings,
    user_id: str,
    template: str,
    data: Mapping[str, Any],
    *,
    channels: tuple[str, ...] | None = None,
    idempotency_key: str | None = None,
    requested_by: str = "service",
    correlation_id: str | None = None,
) -> str:
    """Ask for a notification from Python; returns its id once the request is durable.

    This opens a producer per call; a service sending many should keep a
    `NotificationRequests` of its own.
    """
    request = submission(
        user_id=user_id,
        template=template,
        data=data,
        requested_by=requested_by,
        submitted_at=epoch_ms(utcnow()),
        channels=channels,
        idempotency_key=idempotency_key,
        notification_id=None if idempotency_key else str(uuid.uuid4()),
    )
    producer = AsyncProducer(producer_config(settings))
    try:
        await NotificationRequests(settings, producer, AvroCodec()).submit(
            request, correlation_id=correlation_id
        )
    finally:
        producer.close()
    return request.notification_id
