"""One batch of messages applied to one projection version: decode, fold, write, checkpoint.

The live runner and the replay share this code. Each calls `apply` inside a transaction of
its own, so the rows and the checkpoints of a batch commit together or not at all.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from psycopg import Connection

from projections import store
from projections.model import Event, Key, Projection
from schemas.codec import AvroCodec, DecodeError
from streams.kafka.dead_letters import SourceMessage


class DeadLetters(Protocol):
    """Where undecodable messages go; `flush` raises unless every one was delivered."""

    def send(self, message: SourceMessage, error: DecodeError) -> None: ...
    def flush(self) -> None: ...


@dataclass(frozen=True)
class BatchOutcome:
    applied: int
    dead_letters: int
    offsets: dict[int, int]  # partition -> the checkpoint written: next offset to read


class BatchApplier:
    """Applies batches of one topic's messages to a projection."""

    def __init__(
        self, projection: Projection, topic: str, codec: AvroCodec, dead_letters: DeadLetters
    ) -> None:
        self.projection, self.topic = projection, topic
        self.codec, self.dead_letters = codec, dead_letters

    def apply(
        self, conn: Connection[Any], schema: str, messages: Sequence[SourceMessage]
    ) -> BatchOutcome:
        """Call inside a transaction; dead letters are flushed before it may commit."""
        with paused_gc():
            events, dead = self._decode(messages)
            rows = store.load_rows(conn, schema, self.projection, self._touched(events))
            self.projection.fold(rows, events)
            store.write_rows(conn, schema, self.projection, rows)
        offsets = next_offsets(messages)
        store.save_checkpoints(conn, schema, self.topic, offsets)
        if dead:
            self.dead_letters.flush()
        return BatchOutcome(len(events), dead, offsets)

    def _decode(self, messages: Sequence[SourceMessage]) -> tuple[list[tuple[str, Event]], int]:
        events: list[tuple[str, Event]] = []
        dead = 0
        for message in messages:
            payload = message.value()
            try:
                # The header names the schema, so events this projection ignores skip decoding.
                name = self.codec.writer_schema(payload).name
                if self.projection.handles(name):
                    record = self.codec.decode(payload)[1]
                    if self.projection.partition_scoped:
                        record["partition"] = message.partition() or 0
                    events.append((name, record))
            except DecodeError as error:
                self.dead_letters.send(message, error)
                dead += 1
        return events, dead

    def _touched(self, events: list[tuple[str, Event]]) -> dict[str, set[Key]]:
        keys: dict[str, set[Key]] = {}
        for _, event in events:
            for table, key in self.projection.touches(event):
                keys.setdefault(table, set()).add(key)
        return keys


@contextmanager
def paused_gc() -> Iterator[None]:
    """Decoded records and rows hold no reference cycles, yet allocating thousands of them
    sets off cyclic collections that cost a replay about a quarter of its time."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def next_offsets(messages: Sequence[SourceMessage]) -> dict[int, int]:
    """partition -> the offset after the last message of the batch in that partition."""
    offsets: dict[int, int] = {}
    for message in messages:
        partition, offset = message.partition() or 0, message.offset() or 0
        offsets[partition] = max(offsets.get(partition, 0), offset + 1)
    return offsets
