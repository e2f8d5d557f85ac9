"""Read-process-write steps in one Kafka transaction, for the processes that need exactly once.

A step's output and the consumed offsets commit or vanish together. When a step fails, the
transaction is aborted and the consumer rewound to its committed offsets, so the step is
simply taken again; while the broker is away both are retried, for a minute, rather than
ending the process. A fatal error (a fenced producer, a newer incarnation) ends it: it must
not write.
No call waits without a bound (TIMEOUT_S), so a step never hangs on a broker that stopped
answering: it fails, aborts and is taken again.

Back-to-back transactions of one transactional id wait for each other: commit returns once
the coordinator decided, but it still writes the markers, and the next transaction's first
AddPartitionsToTxn meanwhile gets CONCURRENT_TRANSACTIONS, which librdkafka retries after
20 ms (Kafka 4's KIP-890 would drop that request; librdkafka 2.12 lacks it, #5423). So a
busy step loop can take turns between `lanes` producers, one transactional id each: at most
one of them has a transaction open at a time, so steps still commit one after another.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

import structlog
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Producer, TopicPartition

from infra.config.settings import Settings
from streams.kafka.config import transactional_producer_config
from streams.kafka.polling import is_fatal

log = structlog.get_logger()
T = TypeVar("T")
TIMEOUT_S = 30
RETRY_S = 1.0
GIVE_UP_AFTER_S = 60.0


class TransactionalProducer:
    """One transactional id's producers (one per lane, taking turns); `open` fences their
    previous incarnations."""

    def __init__(self, settings: Settings, transactional_id: str, lanes: int = 1) -> None:
        self._configs = [
            transactional_producer_config(settings, lane_id(transactional_id, lane))
            for lane in range(lanes)
        ]
        self._producers = [Producer(config) for config in self._configs]
        self._turn = 0  # the lane of the current or next transaction

    @property
    def producer(self) -> Producer:
        """The producer of the current transaction, or of the next one."""
        return self._producers[self._turn]

    def open(self) -> None:
        for producer in self._producers:
            producer.init_transactions(TIMEOUT_S)

    def renew(self) -> None:
        """A fresh producer for the current lane, opened (fencing this one), after a failed
        transaction of a long-lived producer: librdkafka 2.12 can leave a partition wedged
        for good after its leader was briefly -1 (librdkafka #5430, streams/kafka/renewing.py).
        The old one is purged and let go on a thread of its own, so nothing here waits on it."""
        old = self.producer
        self._producers[self._turn] = Producer(self._configs[self._turn])
        threading.Thread(target=_let_go, args=(old,), daemon=True).start()
        until_done(lambda: self.producer.init_transactions(TIMEOUT_S))

    def commit(
        self, write: Callable[[Producer], None], consumer: Consumer, offsets: list[TopicPartition]
    ) -> None:
        """Run `write`, then commit what it produced with `offsets` for `consumer`'s group.
        The next transaction is the next lane's; after a failure, `abort` this one's."""
        producer = self.producer
        producer.begin_transaction()
        write(producer)
        metadata = consumer.consumer_group_metadata()
        producer.send_offsets_to_transaction(offsets, metadata, TIMEOUT_S)
        producer.commit_transaction(TIMEOUT_S)
        self._turn = (self._turn + 1) % len(self._producers)

    def abort(
        self, error: KafkaException, consumer: Consumer, rewind: list[TopicPartition]
    ) -> None:
        """After a failed `commit`: abort, then rewind each of `rewind` to its offset when it
        has one (the caller knows where the aborted step began, which is where the last commit
        left it) or else to its committed offset, asked of the group coordinator.

        Knowing is better: after a broker outage the coordinator may not answer a consumer
        whose group is rebalancing while this thread keeps it from polling."""
        if is_fatal(error.args[0]):
            raise error
        until_done(lambda: self.producer.abort_transaction(TIMEOUT_S))
        known = [tp for tp in rewind if tp.offset >= 0]
        unknown = [tp for tp in rewind if tp.offset < 0]
        if unknown:
            known += until_done(lambda: consumer.committed(unknown, TIMEOUT_S))
        for tp in known:
            offset = tp.offset if tp.offset >= 0 else OFFSET_BEGINNING
            consumer.seek(TopicPartition(tp.topic, tp.partition, offset))


def lane_id(transactional_id: str, lane: int) -> str:
    """The transactional id of a lane: the first keeps the id itself."""
    return transactional_id if lane == 0 else f"{transactional_id}.lane{lane}"


def _let_go(producer: Producer) -> None:
    producer.purge()
    producer.flush(TIMEOUT_S)


def until_done(call: Callable[[], T], give_up_after_s: float = GIVE_UP_AFTER_S) -> T:
    """`call()`, retried while Kafka answers with a retriable error, for `give_up_after_s`.

    Then the last error raises: a client that cannot abort or rewind for that long is as
    good as wedged (seen: committed() timing out forever for a consumer fenced meanwhile),
    and a fresh process heals where retrying would not."""
    deadline = time.monotonic() + give_up_after_s
    while True:
        try:
            return call()
        except KafkaException as exc:
            if is_fatal(exc.args[0]) or time.monotonic() > deadline:
                raise
            log.warning("kafka_retry", error=str(exc.args[0]))
            time.sleep(RETRY_S)
