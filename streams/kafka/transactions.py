"""Read-process-write steps in one Kafka transaction, for the processes that need exactly once.

A step's output and the consumed offsets commit or vanish together. When a step fails, the
transaction is aborted and the consumer rewound to its committed offsets, so the step is
simply taken again; while the broker is away both are retried rather than ending the
process. A fatal error (a fenced producer, a newer incarnation) ends it: it must not write.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import structlog
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Producer, TopicPartition

from infra.config.settings import Settings
from streams.kafka.config import transactional_producer_config

log = structlog.get_logger()
T = TypeVar("T")
TIMEOUT_S = 30
RETRY_S = 1.0


class TransactionalProducer:
    """One transactional id's producer; `open` fences its previous incarnation."""

    def __init__(self, settings: Settings, transactional_id: str) -> None:
        self.producer = Producer(transactional_producer_config(settings, transactional_id))

    def open(self) -> None:
        self.producer.init_transactions(TIMEOUT_S)

    def commit(
        self, write: Callable[[Producer], None], consumer: Consumer, offsets: list[TopicPartition]
    ) -> None:
        """Run `write`, then commit what it produced with `offsets` for `consumer`'s group."""
        self.producer.begin_transaction()
        write(self.producer)
        self.producer.send_offsets_to_transaction(offsets, consumer.consumer_group_metadata())
        self.producer.commit_transaction()

    def abort(
        self, error: KafkaException, consumer: Consumer, rewind: list[TopicPartition]
    ) -> None:
        """After a failed `commit`: abort and rewind `rewind` to their committed offsets."""
        if error.args[0].fatal():
            raise error
        until_done(lambda: self.producer.abort_transaction(TIMEOUT_S))
        for tp in until_done(lambda: consumer.committed(rewind, TIMEOUT_S)):
            offset = tp.offset if tp.offset >= 0 else OFFSET_BEGINNING
            consumer.seek(TopicPartition(tp.topic, tp.partition, offset))


def until_done(call: Callable[[], T]) -> T:
    """`call()`, retried while Kafka answers with a retriable error."""
    while True:
        try:
            return call()
        except KafkaException as exc:
            if exc.args[0].fatal():
                raise
            log.warning("kafka_retry", error=str(exc.args[0]))
            time.sleep(RETRY_S)
