"""Kafka for projections: manually assigned consumers and the dead-letter producer.

Projections never use group offsets: the checkpoints in PostgreSQL are the truth, so a
consumer is assigned every partition of its topic at the offsets read from there.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)

from infra.config.settings import Settings
from streams.kafka.config import consumer_config
from streams.kafka.polling import is_fatal


def projection_consumer(settings: Settings, name: str, **extra: Any) -> Consumer:
    group = f"{settings.topic_prefix}.projection.{name}"  # required by librdkafka, never committed
    return Consumer(consumer_config(settings, group, **extra))


def topic_partitions(
    consumer: Consumer, topic: str, stop: threading.Event, timeout: float = 30.0
) -> list[int]:
    """The topic's partitions, waiting for it to exist; [] once `stop` is set or on timeout."""
    deadline = time.monotonic() + timeout
    while not stop.is_set() and time.monotonic() < deadline:
        meta = consumer.list_topics(topic, timeout=10).topics.get(topic)
        if meta is not None and meta.error is None and meta.partitions:
            return sorted(meta.partitions)
        stop.wait(0.5)
    return []


def assign_at(
    consumer: Consumer, topic: str, partitions: list[int], offsets: Mapping[int, int]
) -> None:
    """(Re)assign every partition at its offset, from the beginning where there is none."""
    consumer.unassign()
    consumer.assign(
        [TopicPartition(topic, p, offsets.get(p, OFFSET_BEGINNING)) for p in partitions]
    )


@dataclass
class Polled:
    messages: list[Message] = field(default_factory=list)
    ends: dict[int, int] = field(default_factory=dict)  # partition -> offset of its end


def poll(consumer: Consumer, max_messages: int, timeout: float) -> Polled:
    """Up to `max_messages`, waiting at most `timeout` for the first one but not for more.

    consume() alone would wait out its timeout whenever fewer messages are queued.
    End-of-partition events are reported; errors that are not fatal librdkafka retries.
    """
    polled = Polled()
    first = consumer.poll(timeout)
    if first is None:
        return polled
    for message in [first, *consumer.consume(max_messages - 1, 0)]:
        error = message.error()
        if error is None:
            polled.messages.append(message)
        elif error.code() == KafkaError._PARTITION_EOF:
            polled.ends[message.partition()] = message.offset()
        elif is_fatal(error):
            raise KafkaException(error)
    return polled


def watermarks(
    consumer: Consumer, topic: str, partitions: list[int], timeout: float = 10.0
) -> dict[int, tuple[int, int]]:
    """partition -> (low, high) watermark, asked of the broker now."""
    return {
        p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout)
        for p in partitions
    }


def lag(consumer: Consumer, topic: str, committed: Mapping[int, int], partitions: list[int]) -> int:
    """Messages between the high watermarks last seen and the consumer's positions.

    A partition the consumer has not read from since its assignment has no position yet:
    its committed checkpoint stands in, or else its low watermark.
    """
    total = 0
    for tp in consumer.position([TopicPartition(topic, p) for p in partitions]):
        cached = consumer.get_watermark_offsets(tp, cached=True)
        if cached is None or cached[1] < 0:
            continue
        low, high = cached
        position = tp.offset if tp.offset >= 0 else committed.get(tp.partition, low)
        total += max(high - position, 0)
    return total
