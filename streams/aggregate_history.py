"""One aggregate's records, read straight from its keyed topic (no read model involved).

Records are keyed by aggregate id, so all of one aggregate's records sit on the partition
that the key hashes to (streams.kafka.partitioning). Only that partition is read, from its start
to its end at the time of the call.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer

from infra.config.settings import Settings
from schemas.codec import AvroCodec, DecodeError
from streams.kafka.config import consumer_config
from streams.kafka.partitioning import partition_for
from streams.kafka.reading import read_to_end


class TopicMissing(LookupError):
    """The topic to read does not exist on the cluster."""


@dataclass(frozen=True)
class AggregateHistory:
    """`records` in offset order; `undecodable` counts messages with the key that did not decode."""

    topic: str
    partition: int
    records: tuple[dict[str, Any], ...]
    undecodable: int = 0


def read_aggregate_history(settings: Settings, topic: str, aggregate_id: str) -> AggregateHistory:
    """Every decodable record of `topic` whose aggregate_id is `aggregate_id`."""
    consumer = Consumer(consumer_config(settings, f"{settings.topic_prefix}.audit.{uuid.uuid4()}"))
    try:
        meta = consumer.list_topics(topic, timeout=10).topics.get(topic)
        if meta is None or meta.error is not None or not meta.partitions:
            raise TopicMissing(f"no topic {topic} on {settings.resolved_kafka_bootstrap}")
        partition = partition_for(aggregate_id.encode(), len(meta.partitions))
        return _read(consumer, AvroCodec(), topic, partition, aggregate_id)
    finally:
        consumer.close()


def _read(
    consumer: Consumer, codec: AvroCodec, topic: str, partition: int, aggregate_id: str
) -> AggregateHistory:
    key = aggregate_id.encode()
    records: list[dict[str, Any]] = []
    undecodable = 0
    for message in read_to_end(consumer, topic, partition):
        try:
            _, record = codec.decode(message.value())
        except DecodeError:
            undecodable += message.key() == key
            continue
        if record.get("aggregate_id") == aggregate_id:
            records.append(record)
    return AggregateHistory(topic, partition, tuple(records), undecodable)
