"""Our murmur2 partitioner agrees with where a real producer, configured as ours, puts records."""

from __future__ import annotations

from confluent_kafka import KafkaError, Message, Producer

from infra.config.settings import Settings
from streams.kafka.config import producer_config
from streams.kafka.partitioning import partition_for
from streams.kafka.topics import ensure_topics

KEYS = [
    "n-ada",
    "n-eve",
    "0b7e4f3a-1c2d-4e5f-8a9b-0c1d2e3f4a5b",
    "ünïcødé-notification-✓",
    "",
    *(f"notification-{i}" for i in range(60)),
]


def test_computed_partition_is_where_the_producer_puts_each_key(settings: Settings) -> None:
    topic = ensure_topics(settings).notifications
    landed: dict[str, int] = {}
    errors: list[KafkaError] = []

    def delivered(err: KafkaError | None, message: Message) -> None:
        if err is not None:
            errors.append(err)
        else:
            landed[message.key().decode()] = message.partition()

    producer = Producer(producer_config(settings))
    for key in KEYS:
        producer.produce(topic, key=key.encode(), value=b"probe", on_delivery=delivered)
    assert producer.flush(30) == 0
    assert errors == []

    assert landed == {key: partition_for(key.encode(), settings.partitions) for key in KEYS}
    assert len(set(landed.values())) == settings.partitions  # every partition was exercised
