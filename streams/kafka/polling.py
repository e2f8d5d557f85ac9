"""Batch consumption without waiting for a batch to fill up."""

from __future__ import annotations

from confluent_kafka import Consumer, Message


def poll_batch(consumer: Consumer, max_messages: int, timeout: float) -> list[Message]:
    """Up to `max_messages`: waits at most `timeout` for the first, not at all for the rest.

    consume(n, timeout) alone waits out its timeout whenever fewer than n are queued,
    which would add that timeout to every command's latency at low load.
    """
    first = consumer.poll(timeout)
    if first is None:
        return []
    return [first, *consumer.consume(max_messages - 1, 0)]
