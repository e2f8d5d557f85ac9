"""Dead letters: messages a consumer could not use (undecodable, or an event its handler
failed on), kept whole with their reason and source position."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

from confluent_kafka import KafkaError, Message
from prometheus_client import Counter

from infra.config.settings import Settings
from schemas.codec import AvroCodec
from streams.kafka.config import producer_config
from streams.kafka.renewing import RenewingProducer
from streams.kafka.tracing import headers_out

DEAD_LETTERS = Counter(
    "nexus_dead_letters_total", "Messages sent to the dead-letter topic", ["consumer", "reason"]
)


class SourceMessage(Protocol):
    """The parts of a confluent_kafka.Message a dead letter needs."""

    def topic(self) -> str | None: ...
    def partition(self) -> int | None: ...
    def offset(self) -> int | None: ...
    def key(self) -> bytes | None: ...
    def value(self) -> bytes | None: ...


class Failure(Protocol):
    """Why a message is dead-lettered: a stable `reason` code and a free-form `detail`.

    A DecodeError is one; a projection handler's failure is another (projections.batch)."""

    @property
    def reason(self) -> str: ...
    @property
    def detail(self) -> str: ...


def dead_letter(
    codec: AvroCodec, message: SourceMessage, error: Failure, consumer: str, now: datetime
) -> bytes:
    """The encoded DeadLetter record for a message that could not be used."""
    DEAD_LETTERS.labels(consumer=consumer, reason=error.reason).inc()
    record: dict[str, Any] = {
        "source_topic": message.topic() or "",
        "source_partition": message.partition() or 0,
        "source_offset": message.offset() or 0,
        "source_key": message.key(),
        "payload": message.value() or b"",
        "reason": error.reason,
        "detail": error.detail,
        "consumer": consumer,
        "failed_at": now,
    }
    return codec.encode("dead_letter", record)


class DeadLetterFailed(RuntimeError):
    """A dead letter was not delivered, so the batch holding its source must not commit."""


class KafkaDeadLetters:
    """Produces dead letters for one consumer; `flush` waits until Kafka has them all."""

    def __init__(
        self,
        settings: Settings,
        consumer_name: str,
        codec: AvroCodec,
        now: Callable[[], datetime],
    ) -> None:
        self.topic = settings.topic("deadletter")
        self.consumer_name, self.codec, self.now = consumer_name, codec, now
        self.producer = RenewingProducer(producer_config(settings))
        self.timeout = settings.produce_timeout_ms / 1000 + 5
        self._errors: list[str] = []

    def send(self, message: SourceMessage, error: Failure) -> None:
        value = dead_letter(self.codec, message, error, self.consumer_name, self.now())
        self.producer.produce(self.topic, value, message.key(), self._delivered, headers_out())

    def _delivered(self, error: KafkaError | None, message: Message) -> None:
        if error is not None:
            self._errors.append(str(error))

    def flush(self) -> None:
        remaining = self.producer.flush(self.timeout)
        errors, self._errors = self._errors, []
        if remaining or errors:
            raise DeadLetterFailed(f"{remaining} undelivered, errors: {errors}")
