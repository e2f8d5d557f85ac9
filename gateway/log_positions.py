"""Whether a position names an event of the log: tells a made-up `?after=` from a lag.

A position ("partition-offset") from a command's outcome names a committed event. One that
names none (a partition the topic lacks, an offset at or past the partition's end, a
transaction marker, an aborted record) is never reached by the read models, so a wait on
it could only end in 503 `projection-lagging`, a server error for the client's mistake.
Asked only once such a wait has run out, so the common path costs nothing: a throwaway
consumer (no group joined, nothing committed) reads at most that one offset.
"""

from __future__ import annotations

import time

from confluent_kafka import Consumer, KafkaException, TopicPartition

from infra.config.settings import Settings
from streams.kafka.config import consumer_config
from streams.kafka.polling import poll_batch

TIMEOUT_S = 2.0


def names_event(settings: Settings, topic: str, partition: int, offset: int) -> bool | None:
    """True if a committed record is at `offset`; False if none is or ever will be; None
    when Kafka did not tell within TIMEOUT_S (or retention removed it), so nothing is known.
    Blocking: call it on a worker thread."""
    deadline = time.monotonic() + TIMEOUT_S
    consumer = Consumer(consumer_config(settings, f"{settings.topic_prefix}.gateway-positions"))
    try:
        found = consumer.list_topics(topic, timeout=TIMEOUT_S).topics.get(topic)
        if found is None or found.error is not None:
            return None
        if partition not in found.partitions:
            return False
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), TIMEOUT_S)
        if offset >= high:
            return False
        if offset < low:
            return None
        return _record_at(consumer, TopicPartition(topic, partition, offset), deadline)
    except KafkaException:
        return None
    finally:
        consumer.close()


def _record_at(consumer: Consumer, at: TopicPartition, deadline: float) -> bool | None:
    """Under read_committed a marker or an aborted record is skipped: the first record
    delivered then lies past `at`, or the position moves past it with nothing delivered."""
    consumer.assign([at])
    while time.monotonic() < deadline:
        for message in poll_batch(consumer, 1, 0.05):
            if message.error() is None:
                return bool(message.offset() == at.offset)
        if consumer.position([at])[0].offset > at.offset:
            return False
    return None
