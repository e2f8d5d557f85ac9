"""A replay's fill of a fresh version: many batches folded in memory, rows written by COPY.

The fresh version holds only what this fill wrote, so a row neither in memory nor written is
absent: nothing is read back but rows written and since let go. Rows are written once
`max_rows` are held, and at the end: those the version never had by a plain COPY, the others
by the store's upsert, with the checkpoints in the same transaction. What was not written
is lost with the process, like an uncommitted batch, and a new replay starts afresh anyway.

A handler that raises, or rows PostgreSQL refuses, end the fill (`Fallback`): the caller
rewinds to `checkpoint`, the last one written, and goes on batch by batch, where
BatchApplier isolates the poison events.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import psycopg
from psycopg import Connection

from projections import store
from projections.batch import BatchApplier, Decoded, is_poison, next_offsets
from projections.model import Event, Key, Row, RowCache
from streams.kafka.dead_letters import SourceMessage
from streams.process.gc_pause import paused_gc


class Fallback(Exception):
    """An event or a row the fill cannot take: go on batch by batch from the checkpoint."""


class FreshFill:
    def __init__(
        self, applier: BatchApplier, conn: Connection[Any], schema: str, max_rows: int
    ) -> None:
        self.applier, self.conn, self.schema, self.max_rows = applier, conn, schema, max_rows
        self.rows = RowCache()
        self.written: dict[str, set[Key]] = {}  # the keys the version holds in PostgreSQL
        self.checkpoint: dict[int, int] = {}  # written: partition -> next offset
        self.events = self.dead = 0  # consumed and undecodable up to the checkpoint
        self._offsets: dict[int, int] = {}
        self._pending = self._pending_dead = 0

    def add(self, messages: Sequence[SourceMessage]) -> dict[int, int]:
        """Fold a batch in memory; returns its next offsets, as BatchApplier.apply does."""
        undecodable = self.applier.undecodable
        with paused_gc():
            if any(self.written.values()):  # rows let go may have to be read back first
                decoded, _ = self.applier.decode(messages)
                self._load_let_go(decoded)
                events: Iterable[tuple[str, Event]] = ((d.schema, d.event) for d in decoded)
            else:
                events = self.applier.events(messages)
            try:
                self.applier.projection.fold(self.rows, events)
            except Exception as error:
                raise Fallback(f"a handler failed: {error!r}") from error
        dead = self.applier.undecodable - undecodable
        offsets = next_offsets(messages)
        for partition, offset in offsets.items():
            self._offsets[partition] = max(self._offsets.get(partition, 0), offset)
        self._pending += len(messages)
        self._pending_dead += dead
        if sum(map(len, self.rows.rows.values())) >= self.max_rows:
            self.flush()
            self.rows = RowCache()  # let go: memory stays bounded
        return offsets

    def flush(self) -> None:
        """Write the rows changed since the last flush and the checkpoint, in one transaction."""
        try:
            with self.conn.transaction():
                self._write()
                store.save_checkpoints(self.conn, self.schema, self.applier.topic, self._offsets)
        except psycopg.Error as error:
            if is_poison(error):
                raise Fallback(f"PostgreSQL refused a row: {error!r}") from error
            raise
        for table in self.applier.projection.tables:
            self.rows.dirty.pop(table.name, None)
        self.checkpoint = dict(self._offsets)
        self.events, self.dead = self.events + self._pending, self.dead + self._pending_dead
        self._pending = self._pending_dead = 0

    def _write(self) -> None:
        for table in self.applier.projection.tables:
            held = self.written.setdefault(table.name, set())
            current = self.rows.rows.get(table.name, {})
            fresh: dict[Key, Row] = {}
            changed: list[Row] = []
            gone: list[Key] = []
            for key in self.rows.dirty.get(table.name, ()):
                row = current[key]
                if key not in held:
                    if row is not None:
                        fresh[key] = row
                elif row is None:
                    gone.append(key)
                else:
                    changed.append(row)
            store.insert_rows(self.conn, self.schema, table, list(fresh.values()))
            store.upsert_rows(self.conn, self.schema, table, changed)
            store.delete_rows(self.conn, self.schema, table, gone)
            held.difference_update(gone)
            held.update(fresh)

    def _load_let_go(self, events: list[Decoded]) -> None:
        """Read back the rows this batch touches that were written and since let go."""
        wanted: dict[str, set[Key]] = {}
        for table, keys in self.applier.touched(events).items():
            held, cached = self.written.get(table, set()), self.rows.rows.get(table, {})
            wanted[table] = {k for k in keys if k in held and k not in cached}
        if not any(wanted.values()):
            return
        loaded = store.load_rows(self.conn, self.schema, self.applier.projection, wanted)
        for table, rows in loaded.rows.items():
            self.rows.rows.setdefault(table, {}).update(rows)
