"""A plain (non-transactional) producer that replaces itself once a delivery timed out.

librdkafka 2.12 can leave a partition wedged for good after its leader was briefly -1,
as when the controller fences a broker that was paused past its session timeout: a
produce answer names leader -1, that metadata update is skipped, the partition stays on
the internal broker, and every later message to it times out (librdkafka #5430, open).
A fresh producer reads fresh metadata and delivers again. So after a timeout the next
call swaps in a new producer; the old one is flushed on a thread of its own, which
still fires its callbacks. Renewals are at least one message timeout apart, so a long
outage costs one producer per timeout, not one per message: only a message of the
current producer, which lived a whole timeout, can ask for the next.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import structlog
from confluent_kafka import KafkaError, Message, Producer
from confluent_kafka.admin import ClusterMetadata

log = structlog.get_logger()

DeliveryCallback = Callable[[KafkaError | None, Message], None]
IndexedCallback = Callable[[int, KafkaError | None, Message], None]  # index in the batch first


class RenewingProducer:
    def __init__(self, config: dict[str, Any]) -> None:
        self._config = config
        self._timeout_s = float(config.get("message.timeout.ms", 300_000)) / 1000
        self._lock = threading.Lock()
        self._producer = Producer(config)
        self._timed_out = False
        self.renewals = 0  # also the generation: a retired producer's timeouts are old news

    def produce(
        self,
        topic: str,
        value: bytes,
        key: str | bytes | None,
        on_delivery: DeliveryCallback,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> None:
        """As Producer.produce; BufferError and KafkaException pass through."""
        self._renew_if_due()
        generation = self.renewals

        def delivered(error: KafkaError | None, message: Message) -> None:
            timed_out = error is not None and error.code() == KafkaError._MSG_TIMED_OUT
            if timed_out and generation == self.renewals:
                self._timed_out = True
            on_delivery(error, message)

        self._producer.produce(topic, value=value, key=key, on_delivery=delivered, headers=headers)

    def produce_many(
        self,
        topic: str,
        messages: Sequence[tuple[str | bytes | None, bytes]],
        start: int,
        on_delivery: IndexedCallback,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> int:
        """Produce `messages[start:]` until librdkafka's queue is full; returns the index
        reached. One callback for the batch, told each message's index: a closure per
        message costs more than producing it."""
        self._renew_if_due()
        generation, produce = self.renewals, self._producer.produce

        def delivered(index: int, error: KafkaError | None, message: Message) -> None:
            timed_out = error is not None and error.code() == KafkaError._MSG_TIMED_OUT
            if timed_out and generation == self.renewals:
                self._timed_out = True
            on_delivery(index, error, message)

        for index in range(start, len(messages)):
            key, value = messages[index]
            try:
                produce(topic, value, key, on_delivery=partial(delivered, index), headers=headers)
            except BufferError:
                return index
        return len(messages)

    def poll(self, timeout: float) -> int:
        self._renew_if_due()
        return int(self._producer.poll(timeout))

    def flush(self, timeout: float) -> int:
        return int(self._producer.flush(timeout))

    def list_topics(self, timeout: float) -> ClusterMetadata:
        return self._producer.list_topics(timeout=timeout)

    def _renew_if_due(self) -> None:
        if not self._timed_out:
            return
        with self._lock:
            if not self._timed_out:
                return
            old, self._producer = self._producer, Producer(self._config)
            self._timed_out = False
            self.renewals += 1
        log.warning("kafka_producer_renewed", reason="delivery timed out")
        retire = threading.Thread(
            target=old.flush, args=(self._timeout_s + 5,), name="kafka-retire", daemon=True
        )
        retire.start()
