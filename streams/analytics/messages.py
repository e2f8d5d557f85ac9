"""Faust's messages seen through the confluent-kafka `Message` methods our code reads."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class TrackedMessage:
    source_topic: str
    source_partition: int
    source_offset: int
    source_key: bytes | None
    source_value: bytes | None

    @classmethod
    def of(cls, message: Any) -> TrackedMessage:
        """From a faust Message (`event.message`)."""
        return cls(message.topic, message.partition, message.offset, message.key, message.value)

    def topic(self) -> str:
        return self.source_topic

    def partition(self) -> int:
        return self.source_partition

    def offset(self) -> int:
        return self.source_offset

    def key(self) -> bytes | None:
        return self.source_key

    def value(self) -> bytes | None:
        return self.source_value
