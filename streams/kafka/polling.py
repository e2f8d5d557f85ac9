"""Batch consumption without waiting for a batch to fill up, and fatal errors made loud."""

from __future__ import annotations

from confluent_kafka import Consumer, KafkaError, KafkaException, Message


def is_fatal(error: KafkaError) -> bool:
    """Whether the client that reported `error` is unusable for good and must be rebuilt.

    A consumer hands librdkafka's fatal errors (a static member fenced by a newer one with
    the same group.instance.id, say) to poll() as an event with code _FATAL, and that event's
    KafkaError.fatal() is False: checking fatal() alone lets a dead consumer poll on forever.
    """
    return bool(error.fatal()) or error.code() == KafkaError._FATAL


def raise_fatal(messages: list[Message]) -> None:
    """Raise KafkaException for the first fatal error among `messages`, if any."""
    for message in messages:
        error = message.error()
        if error is not None and is_fatal(error):
            raise KafkaException(error)


def poll_batch(consumer: Consumer, max_messages: int, timeout: float) -> list[Message]:
    """Up to `max_messages`: waits at most `timeout` for the first, not at all for the rest.

    consume(n, timeout) alone waits out its timeout whenever fewer than n are queued,
    which would add that timeout to every command's latency at low load. A fatal error
    raises KafkaException; other errors come back as messages whose error() is set.
    """
    first = consumer.poll(timeout)
    if first is None:
        return []
    messages = [first, *consumer.consume(max_messages - 1, 0)]
    raise_fatal(messages)
    return messages
