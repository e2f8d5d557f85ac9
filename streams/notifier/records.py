"""Avro records for what the notifier writes: saga events and channel circuit events."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from aggregates import codec as data_codec
from sagas.circuit.events import CircuitEvent
from sagas.notification.events import NotificationEvent
from sagas.notification.request import DigestItemSubmitted
from sagas.runtime.engine import SagaEventOut

ACTOR = "notifier"
Record = dict[str, Any]


def saga_record(out: SagaEventOut, occurred_at: datetime) -> Record:
    """The saga's id is its correlation id, so every event of one saga groups under it."""
    return _record(
        out.event, "notification", out.saga_id, out.version, occurred_at, out.causation_id
    )


def circuit_record(channel: str, event: CircuitEvent, occurred_at: datetime) -> Record:
    """Circuit state is per worker, so its events are not versioned (aggregate_version 0)."""
    return _record(event, "channel", channel, 0, occurred_at, None)


def digest_item_record(item: DigestItemSubmitted, occurred_at: datetime) -> Record:
    """A request, not a saga event (version 0), caused by the digested notification's saga."""
    return _record(item, "notification", item.digest_id, 0, occurred_at, item.item.notification_id)


def _record(
    event: NotificationEvent | CircuitEvent | DigestItemSubmitted,
    aggregate_type: str,
    aggregate_id: str,
    version: int,
    occurred_at: datetime,
    causation_id: str | None,
) -> Record:
    return {
        "event_id": str(uuid.uuid4()),
        "type": event.TYPE,
        "aggregate_type": aggregate_type,
        "aggregate_id": aggregate_id,
        "aggregate_version": version,
        "occurred_at": occurred_at,
        "correlation_id": aggregate_id,
        "causation_id": causation_id,
        "actor": ACTOR,
        "data": data_codec.to_data(event),
    }
