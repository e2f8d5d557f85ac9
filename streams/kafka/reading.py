"""Reading one partition from its start to the end it has now, as any consumer would."""

from __future__ import annotations

from collections.abc import Iterator

from confluent_kafka import Consumer, Message, TopicPartition

from streams.kafka.polling import poll_batch


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
    yield from read_range(consumer, topic, partition, start, high)


def read_range(
    consumer: Consumer, topic: str, partition: int, start: int, end: int
) -> Iterator[Message]:
    """Every readable message of the partition with `start <= offset < end`, in order
    (under read_committed, only committed ones). `end` must not lie past the partition's end."""
    consumer.assign([TopicPartition(topic, partition, start)])
    position = start
    while position < end:
        # Not consume(1000, t): that waits out t whenever fewer than 1000 are left, as the
        # last batch always is; a takeover reads three ranges and would wait three times.
        for message in poll_batch(consumer, 1000, 0.02):
            if message.error() is None and message.offset() < end:
                yield message
        position = max(consumer.position([TopicPartition(topic, partition)])[0].offset, start)
