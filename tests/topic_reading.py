"""Test helper: read a whole topic as decoded records, the way any consumer would: each event
of a collector batch (schemas.tracked_batch) is a record at its batch's position."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer

from infra.config.settings import Settings
from schemas.codec import AvroCodec
from schemas.tracked_batch import unpack
from streams.kafka.config import consumer_config
from streams.kafka.reading import read_to_end


@dataclass(frozen=True)
class Stored:
    partition: int
    offset: int
    key: bytes | None
    record: dict[str, Any]
    schema: str  # the writer schema's name: what a projection's handlers are keyed by


def read_topic(
    settings: Settings, topic: str, *, isolation: str = "read_committed"
) -> list[Stored]:
    """Every message of `topic` up to its current end, decoded, in partition/offset order."""
    codec = AvroCodec()
    consumer = Consumer(
        consumer_config(settings, f"reader-{uuid.uuid4().hex}", **{"isolation.level": isolation})
    )
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        found: list[Stored] = []
        for partition in partitions:
            found.extend(_read_partition(consumer, codec, topic, partition))
        return found
    finally:
        consumer.close()


def _read_partition(
    consumer: Consumer, codec: AvroCodec, topic: str, partition: int
) -> list[Stored]:
    found = []
    for message in read_to_end(consumer, topic, partition):
        for payload in unpack(codec, message.value()):
            schema, record = codec.decode(payload)
            found.append(Stored(partition, message.offset(), message.key(), record, schema.name))
    return found
