"""Direct Kafka access for the bench: counting a topic's messages and bulk writing to it."""

from __future__ import annotations

from collections.abc import Iterable

from confluent_kafka import Consumer, Producer, TopicPartition

from infra.config.settings import Settings
from streams.kafka.config import consumer_config, producer_config


def message_count(settings: Settings, topic: str) -> int:
    """Offsets in use across the topic's partitions (exact for non-transactional writes)."""
    consumer = Consumer(consumer_config(settings, f"{settings.topic_prefix}.bench-count"))
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        total = 0
        for partition in partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), 10)
            total += high - low
        return total
    finally:
        consumer.close()


def bulk_producer(settings: Settings) -> Producer:
    """The platform's producer config with bigger batches: for loading data, not timed."""
    return Producer(producer_config(settings, **{"linger.ms": 50, "batch.size": 1_000_000}))


def produce_all(producer: Producer, topic: str, messages: Iterable[tuple[str, bytes]]) -> int:
    """Produce (key, value) pairs, waiting out a full queue; returns how many were sent."""
    sent = 0
    for key, value in messages:
        while True:
            try:
                producer.produce(topic, value=value, key=key)
                break
            except BufferError:
                producer.poll(0.05)
        sent += 1
        if sent % 10_000 == 0:
            producer.poll(0)
    remaining = producer.flush(120)
    if remaining:
        raise RuntimeError(f"{remaining} messages not delivered to {topic}")
    return sent
