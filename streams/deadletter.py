"""Dead letters: undecodable messages, kept with their reason and source position."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Protocol

from prometheus_client import Counter

from schemas.codec import AvroCodec, DecodeError

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


def dead_letter(
    codec: AvroCodec, message: SourceMessage, error: DecodeError, consumer: str, now: datetime
) -> bytes:
    """The encoded DeadLetter record for a message that could not be decoded."""
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


def utcnow() -> datetime:
    return datetime.now(UTC)
