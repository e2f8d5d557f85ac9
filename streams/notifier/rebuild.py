"""Rebuild the sagas of one partition by folding the saga topic since the horizon.

A saga lives at most until its deadline (a digest: its window, then a deadline), and the
horizon is at least twice that (settings), so every saga still running started after it: reading
from there finds them all, and the time to take over a partition stays bounded by the
horizon rather than growing with the topic. A saga whose first event lies before the
horizon is over; its later events found here are skipped.
"""

from __future__ import annotations

import uuid
from typing import Any, get_args

import structlog
from confluent_kafka import Consumer

from aggregates import codec as data_codec
from infra.config.settings import Settings
from sagas.notification.decider import evolve, initial_state
from sagas.notification.events import NotificationEvent
from sagas.runtime.engine import Saga
from schemas.codec import AvroCodec, DecodeError
from streams.kafka.config import consumer_config
from streams.kafka.reading import read_to_end

log = structlog.get_logger()
EVENT_TYPES: dict[str, Any] = {cls.TYPE: cls for cls in get_args(NotificationEvent)}


def saga_event(record: dict[str, Any]) -> NotificationEvent | None:
    """The saga event in a decoded record; None for anything else on the topic."""
    cls = EVENT_TYPES.get(record.get("type", ""))
    if cls is None or record.get("aggregate_type") != "notification":
        return None
    event: NotificationEvent = data_codec.from_data(cls, record["data"])
    return event


def load_partition(
    settings: Settings, topic: str, partition: int, codec: AvroCodec, since_ms: int
) -> dict[str, Saga]:
    sagas: dict[str, Saga] = {}
    older: set[str] = set()  # sagas that started before the horizon
    group = f"{settings.topic_prefix}.notifier-rebuild.{uuid.uuid4().hex}"
    reader = Consumer(consumer_config(settings, group, **{"enable.partition.eof": False}))
    try:
        for message in read_to_end(reader, topic, partition, since_ms):
            try:
                _, record = codec.decode(message.value())
                event = saga_event(record)
            except (DecodeError, ValueError):
                continue  # not ours; the projector dead-letters what it cannot read
            if event is None:
                continue
            saga_id, version = record["aggregate_id"], record["aggregate_version"]
            saga = sagas.get(saga_id)
            if saga is None:
                if version != 1:
                    older.add(saga_id)
                    continue
                saga = Saga(initial_state, 0, partition, message.timestamp()[1])
            if version > saga.version:  # a replayed duplicate changes nothing
                saga.state = evolve(saga.state, event)
                saga.version = version
            sagas[saga_id] = saga
    finally:
        reader.close()
    log.info("saga_partition_rebuilt", partition=partition, sagas=len(sagas), skipped=len(older))
    return sagas
