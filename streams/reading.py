"""Reading one partition from its start to the end it has now, as any consumer would."""

from __future__ import annotations

from collections.abc import Iterator

from confluent_kafka import Consumer, Message, TopicPartition


def read_to_end(consumer: Consumer, topic: str, partition: int) -> Iterator[Message]:
    """Every readable message of the partition, up to its end when called.

    The end is reached by position rather than by the last offset delivered: under
    read_committed the last offsets may be transaction markers, never delivered.
    """
    low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), 30)
    consumer.assign([TopicPartition(topic, partition, low)])
    position = low
    while position < high:
        for message in consumer.consume(1000, 1.0):
            if message.error() is None:
                yield message
        position = max(consumer.position([TopicPartition(topic, partition)])[0].offset, low)
