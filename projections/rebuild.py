"""Rebuild: fills the next version of one projection from its topic, then swaps it live."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import structlog
from confluent_kafka import Message
from psycopg import Connection
from tqdm import tqdm

from infra.config.settings import Settings
from projections import store, versions
from projections.batch import BatchApplier
from projections.catalog import schema_name
from projections.fresh_fill import Fallback, FreshFill
from projections.kafka_io import (
    assign_at,
    poll,
    projection_consumer,
    topic_partitions,
    watermarks,
)
from projections.model import Projection
from schemas.codec import AvroCodec
from streams.kafka.dead_letters import Failure, SourceMessage
from streams.process.gc_pause import paused_gc

log = structlog.get_logger()


class ReplayConflict(RuntimeError):
    """Another replay of the same projection runs, or swapped versions meanwhile."""


class SkippedDeadLetters:
    """The live runner has dead-lettered these messages already; a rebuild only counts them.

    Poison events included: the runner gave them their tries, so a rebuild passes over them
    at once (`give_up` always)."""

    def __init__(self) -> None:
        self.count = 0

    def send(self, message: SourceMessage, error: Failure) -> None:
        self.count += 1

    def flush(self) -> None:
        pass


class Rebuild:
    """The next version of one projection, from creation to swap; `close` when done."""

    def __init__(
        self,
        settings: Settings,
        projection: Projection,
        conn: Connection[Any],
        codec: AvroCodec,
        batch_size: int,
        memory_rows: int,
    ) -> None:
        self.projection, self.conn, self.batch_size = projection, conn, batch_size
        self.memory_rows = memory_rows
        self.topic = settings.topic(projection.topic)
        self.dead_letters = SkippedDeadLetters()
        self.applier = BatchApplier(
            projection, self.topic, codec, self.dead_letters, give_up=lambda _: True
        )
        self.consumer = projection_consumer(
            settings, f"{projection.name}.replay", **{"enable.partition.eof": True}
        )
        self.partitions = topic_partitions(self.consumer, self.topic, threading.Event())
        if not self.partitions:
            self.consumer.close()
            raise ReplayConflict(f"topic {self.topic} does not exist")
        self.old_version, self.new_version = self._create_version()
        self.schema = schema_name(projection.name, self.new_version)

    def _create_version(self) -> tuple[int, int]:
        with self.conn.transaction():
            old = versions.live_version(self.conn, self.projection.name)
            if old is None:
                raise ReplayConflict(f"projection {self.projection.name} is not migrated")
            # Schemas left behind by an interrupted replay are not live: start afresh.
            for stale in versions.versions_present(self.conn, self.projection.name):
                if stale != old:
                    versions.drop_version(self.conn, self.projection.name, stale)
            versions.create_version(self.conn, self.projection, old + 1)
        return old, old + 1

    def fill(self, progress: bool) -> int:
        """Consume from offset 0 to the end as of now: folded in memory and written by COPY
        (projections.fresh_fill), or batch by batch from its checkpoint once that fails."""
        marks = watermarks(self.consumer, self.topic, self.partitions)
        assign_at(self.consumer, self.topic, self.partitions, {})
        total = sum(high - low for low, high in marks.values())
        desc = f"replay {self.projection.name}"
        fill = FreshFill(self.applier, self.conn, self.schema, self.memory_rows)
        with tqdm(total=total, disable=not progress, unit="ev", unit_scale=True, desc=desc) as bar:
            try:
                # The rows held are long-lived and free of cycles: collections would only
                # traverse them again and again as they grow.
                with paused_gc():
                    events = self._consume_to(marks, fill.add, bar.update)
                fill.flush()
                return events
            except Fallback as reason:
                log.warning("replay_fill_batch_by_batch", projection=self.projection.name,
                            reason=str(reason), events_written=fill.events)  # fmt: skip
            self.dead_letters.count = fill.dead  # the batches are read again: count them once
            assign_at(self.consumer, self.topic, self.partitions, fill.checkpoint)
            spans = {p: (fill.checkpoint.get(p, low), high) for p, (low, high) in marks.items()}
            return fill.events + self._consume_to(spans, self._apply_committed, bar.update)

    def swap(self) -> int:
        """Catch up and make the new version live, all in one transaction."""
        with self.conn.transaction():
            live = versions.live_version(self.conn, self.projection.name, "update")
            if live != self.old_version:
                raise ReplayConflict(f"{self.projection.name} went live at v{live} meanwhile")
            offsets = store.load_checkpoints(self.conn, self.schema, self.topic)
            assign_at(self.consumer, self.topic, self.partitions, offsets)
            marks = watermarks(self.consumer, self.topic, self.partitions)
            starts = {p: (offsets.get(p, low), high) for p, (low, high) in marks.items()}
            events = self._consume_to(starts, self._apply, lambda _: None)
            versions.lock_catalog(self.conn)
            versions.set_live_version(self.conn, self.projection.name, self.new_version)
            versions.point_views(self.conn, self.projection, self.new_version)
            versions.refresh_checkpoint_view(self.conn)
        return events

    def close(self) -> None:
        self.consumer.close()

    def _apply(self, messages: list[Message]) -> dict[int, int]:
        return self.applier.apply(self.conn, self.schema, messages).offsets

    def _apply_committed(self, messages: list[Message]) -> dict[int, int]:
        with self.conn.transaction():
            return self._apply(messages)

    def _consume_to(
        self,
        spans: dict[int, tuple[int, int]],
        apply: Callable[[list[Message]], dict[int, int]],
        advanced: Callable[[int], object],
    ) -> int:
        """Apply messages until every partition reached the end of its (start, end) span.

        An end-of-partition event also ends a span: with read_committed, the last offsets
        may be transaction markers that are never delivered.
        """
        pending = {p for p, (start, end) in spans.items() if start < end}
        consumed = 0
        while pending:
            polled = poll(self.consumer, self.batch_size, 1.0)
            if polled.messages:
                reached = apply(polled.messages)
                consumed += len(polled.messages)
                advanced(len(polled.messages))
                pending -= {p for p, offset in reached.items() if offset >= spans[p][1]}
            pending -= set(polled.ends)
        return consumed
