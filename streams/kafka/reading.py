"""Reading one partition from its start to the end it has now, as any consumer would."""

from __future__ import annotations

from collections.abc import Iterator

from confluent_kafka import Consumer, Message, TopicPartition


def read_to_end(
    consumer: Consumer, topic: str, partition: int, since_ms: int | None = None
) -> Iterator[Message]:
    """Every readable message of the partition, up to its end when called; with
    `since_ms`, from the first message whose timestamp is at or after it.

    The end is reached by position rather than by the last offset delivered: under
    read_committed the last offsets may be transaction markers, never delivered.
    """
    low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), 30)
    start = low
    if since_ms is not None:
        [found] = consumer.offsets_for_times([TopicPartition(topic, partition, since_ms)], 30)
        start = high if found.offset < 0 else max(found.offset, low)  # -1: nothing that new
    consumer.assign([TopicPartition(topic, partition, start)])
    position = start
    while position < high:
        for message in consumer.consume(1000, 1.0):
            if message.error() is None:
                yield message
        position = max(consumer.position([TopicPartition(topic, partition)])[0].offset, start)
