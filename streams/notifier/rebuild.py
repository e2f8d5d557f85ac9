"""Rebuild the sagas of one partition by folding the saga topic from its start."""

from __future__ import annotations

import uuid
from typing import Any, get_args

import structlog
from confluent_kafka import Consumer

from aggregates import codec as data_codec
from infra.settings import Settings
from sagas.notification.decider import evolve, initial_state
from sagas.notification.events import NotificationEvent
from schemas.codec import AvroCodec, DecodeError
from streams.kafka_config import consumer_config
from streams.notifier.engine import Saga
from streams.reading import read_to_end

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
    settings: Settings, topic: str, partition: int, codec: AvroCodec
) -> dict[str, Saga]:
    sagas: dict[str, Saga] = {}
    group = f"{settings.topic_prefix}.notifier-rebuild.{uuid.uuid4().hex}"
    reader = Consumer(consumer_config(settings, group, **{"enable.partition.eof": False}))
    try:
        for message in read_to_end(reader, topic, partition):
            try:
                _, record = codec.decode(message.value())
                event = saga_event(record)
            except (DecodeError, ValueError):
                continue  # not ours; the projector dead-letters what it cannot read
            if event is None:
                continue
            saga_id = record["aggregate_id"]
            saga = sagas.get(saga_id) or Saga(initial_state, 0, partition)
            if record["aggregate_version"] > saga.version:  # a replayed duplicate changes nothing
                saga.state = evolve(saga.state, event)
                saga.version = record["aggregate_version"]
            sagas[saga_id] = saga
    finally:
        reader.close()
    log.info("saga_partition_rebuilt", partition=partition, sagas=len(sagas))
    return sagas
