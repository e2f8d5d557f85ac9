"""One batch of messages applied to one projection version: decode, fold, write, checkpoint.

The live runner and the replay share this code. Each calls `apply` inside a transaction of
its own, so the rows and the checkpoints of a batch commit together or not at all.

A poison event (one that decodes but that a handler raises on, or whose rows PostgreSQL
refuses, such as a string holding NUL) must not hold the rest back: a batch that fails is
undone to a savepoint and applied again event by event, each in a savepoint of its own, to
find the events that fail. Unless the caller gives up on all of them (`give_up`, after the
last of its tries) `EventsFailed` is raised and the transaction must roll back; otherwise
they are dead-lettered, the others kept, and the checkpoint passes them all.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

import psycopg
from psycopg import Connection

from projections import store
from projections.attempts import Position
from projections.model import Event, Key, Projection
from schemas.codec import AvroCodec, DecodeError
from schemas.registry import SchemaVersion
from schemas.tracked_batch import BATCH_SCHEMA, unpack
from streams.kafka.dead_letters import Failure, SourceMessage
from streams.process.gc_pause import paused_gc

HANDLER_FAILED = "handler_failed"  # the dead-letter reason of a poison event


class DeadLetters(Protocol):
    """Where unusable messages go; `flush` raises unless every one was delivered."""

    def send(self, message: SourceMessage, error: Failure) -> None: ...
    def flush(self) -> None: ...


@dataclass(frozen=True)
class BatchOutcome:
    applied: int
    dead_letters: int
    offsets: dict[int, int]  # partition -> the checkpoint written: next offset to read


class Decoded(NamedTuple):
    """A NamedTuple, as one is made per event: a frozen dataclass costs twice as much."""

    message: SourceMessage
    schema: str  # the schema's name: the event type, for events
    event: Event

    @property
    def position(self) -> Position:
        return self.message.partition() or 0, self.message.offset() or 0


@dataclass(frozen=True)
class HandlerFailure:
    """Why a decodable event was dead-lettered: a Failure, as a DecodeError is."""

    detail: str
    reason: str = HANDLER_FAILED


class EventsFailed(Exception):
    """Events of a batch failed and were not given up on: roll the transaction back."""

    def __init__(self, failures: dict[Position, str]) -> None:
        super().__init__(f"{len(failures)} event(s) failed: {failures}")
        self.failures = failures


def is_poison(error: Exception) -> bool:
    """Whether the event is to blame rather than the database: a handler's own exception, or
    data PostgreSQL refuses. A lost connection or a bug in the SQL fails every event alike,
    so those are retried as they are, never dead-lettered."""
    if isinstance(error, psycopg.Error):
        return isinstance(error, psycopg.DataError | psycopg.IntegrityError)
    return True


def _never(position: Position) -> bool:
    return False


class BatchApplier:
    """Applies batches of one topic's messages to a projection.

    `give_up(position)`: whether an event that fails now is dead-lettered (True) or its
    batch rolled back to be tried again (False, the default). `audit`: record each event
    applied (store.record_applications), in the savepoint that writes its rows.
    """

    def __init__(
        self,
        projection: Projection,
        topic: str,
        codec: AvroCodec,
        dead_letters: DeadLetters,
        give_up: Callable[[Position], bool] = _never,
        *,
        audit: bool = False,
    ) -> None:
        self.projection, self.topic = projection, topic
        self.codec, self.dead_letters, self.give_up = codec, dead_letters, give_up
        self.audit = audit
        self.undecodable = 0  # messages sent to the dead letters as undecodable, all batches

    def apply(
        self, conn: Connection[Any], schema: str, messages: Sequence[SourceMessage]
    ) -> BatchOutcome:
        """Call inside a transaction; dead letters are flushed before it may commit."""
        with paused_gc():
            events, dead = self.decode(messages)
            failed = self._write_isolating(conn, schema, events)
        offsets = next_offsets(messages)
        store.save_checkpoints(conn, schema, self.topic, offsets)
        if dead or failed:
            self.dead_letters.flush()
        return BatchOutcome(len(events) - failed, dead + failed, offsets)

    def _write_isolating(self, conn: Connection[Any], schema: str, events: list[Decoded]) -> int:
        """Write the events' rows; returns how many poison events were dead-lettered."""
        try:
            with conn.transaction():  # a savepoint: a failure undoes only this
                self._write(conn, schema, events)
            return 0
        except Exception as error:
            if not is_poison(error):
                raise
        failures = self._write_one_by_one(conn, schema, events)
        if not all(self.give_up(e.position) for e, _ in failures):
            raise EventsFailed({e.position: detail for e, detail in failures})
        for decoded, detail in failures:
            self.dead_letters.send(decoded.message, HandlerFailure(detail))
        return len(failures)

    def _write_one_by_one(
        self, conn: Connection[Any], schema: str, events: list[Decoded]
    ) -> list[tuple[Decoded, str]]:
        """Each event in a savepoint of its own: the good ones stay written."""
        failures: list[tuple[Decoded, str]] = []
        for decoded in events:
            try:
                with conn.transaction():
                    self._write(conn, schema, [decoded])
            except Exception as error:
                if not is_poison(error):
                    raise
                failures.append((decoded, self._describe(decoded, error)))
        return failures

    def _describe(self, decoded: Decoded, error: Exception) -> str:
        return (
            f"projection {self.projection.name} failed on {decoded.schema}:"
            f" {type(error).__name__}: {error}"
        )

    def _write(self, conn: Connection[Any], schema: str, events: list[Decoded]) -> None:
        rows = store.load_rows(conn, schema, self.projection, self.touched(events))
        self.projection.fold(rows, ((d.schema, d.event) for d in events))
        store.write_rows(conn, schema, self.projection, rows)
        if self.audit:
            # the events of a collector batch share its position
            store.record_applications(conn, schema, dict.fromkeys(d.position for d in events))

    def decode(self, messages: Sequence[SourceMessage]) -> tuple[list[Decoded], int]:
        """The events of the batch this projection handles, and how many were undecodable."""
        before = self.undecodable
        events = [Decoded(m, *event) for m, event in self._decoded(messages)]
        return events, self.undecodable - before

    def events(self, messages: Sequence[SourceMessage]) -> Iterator[tuple[str, Event]]:
        """(schema name, event) of each message handled, decoded only as it is reached: a
        fold that drops each record before the next is decoded keeps the memory it reuses
        warm, where decoding a whole batch first costs a replay half as much again."""
        return (event for _, event in self._decoded(messages))

    def _decoded(
        self, messages: Sequence[SourceMessage]
    ) -> Iterator[tuple[SourceMessage, tuple[str, Event]]]:
        for message in messages:
            try:
                items = self._items(message)
            except DecodeError as error:
                self.dead_letters.send(message, error)
                self.undecodable += 1
                continue
            for item, known in items:
                try:
                    # The header names the schema: events this projection ignores skip decoding.
                    payload = item.value()
                    writer = known or self.codec.writer_schema(payload)
                    name = writer.name
                    if self.projection.handles(name):
                        record = self.codec.decode(payload, writer)[1]
                        if self.projection.partition_scoped:
                            record["partition"] = item.partition() or 0
                        yield item, (name, record)
                except DecodeError as error:
                    self.dead_letters.send(item, error)
                    self.undecodable += 1

    def _items(self, message: SourceMessage) -> list[tuple[SourceMessage, SchemaVersion | None]]:
        """The message's events, each with its writer's schema when already read: a message
        that is one event has its header read once, not twice."""
        writer = self.codec.writer_schema(message.value())
        if writer.name != BATCH_SCHEMA:
            return [(message, writer)]
        return [(item, None) for item in batch_items(self.codec, message)]

    def touched(self, events: list[Decoded]) -> dict[str, set[Key]]:
        keys: dict[str, set[Key]] = {}
        for decoded in events:
            for table, key in self.projection.touches(decoded.event):
                keys.setdefault(table, set()).add(key)
        return keys


class BatchItem:
    """One event of a collector batch, as a message at its batch's position: a dead letter
    of it carries the event alone. Plain slots: one is made per event."""

    __slots__ = ("batch", "payload")

    def __init__(self, batch: SourceMessage, payload: bytes) -> None:
        self.batch, self.payload = batch, payload

    def topic(self) -> str | None:
        return self.batch.topic()

    def partition(self) -> int | None:
        return self.batch.partition()

    def offset(self) -> int | None:
        return self.batch.offset()

    def key(self) -> bytes | None:
        return self.batch.key()

    def value(self) -> bytes | None:
        return self.payload


def batch_items(codec: AvroCodec, message: SourceMessage) -> Sequence[SourceMessage]:
    """The message, or each event of it if it is a collector batch; raises DecodeError."""
    payloads = unpack(codec, message.value())
    if len(payloads) == 1 and payloads[0] is message.value():
        return (message,)
    return [BatchItem(message, payload) for payload in payloads]


def next_offsets(messages: Sequence[SourceMessage]) -> dict[int, int]:
    """partition -> the offset after the last message of the batch in that partition."""
    offsets: dict[int, int] = {}
    for message in messages:
        partition, offset = message.partition() or 0, message.offset() or 0
        offsets[partition] = max(offsets.get(partition, 0), offset + 1)
    return offsets
