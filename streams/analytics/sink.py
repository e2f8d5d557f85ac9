"""Applies batches of one topic's messages to a live projection, exactly once.

The analytics worker keeps the projections in `catalog.STREAM_PROCESSED` live with one sink
each, on a connection of its own. Inside one transaction: share-lock the projection's
registry row (a replay's swap waits for us, and we see its new version next time), lock the
batch's partitions (a worker that lost them in a rebalance cannot interleave), read their
checkpoints, drop what is below them, and apply the rest with rows and checkpoints together
(`projections.batch`, as the projector and a replay do).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from prometheus_client import Counter, Histogram
from psycopg import Connection

from projections import metrics, store, versions
from projections.batch import BatchApplier, DeadLetters
from projections.catalog import schema_name
from projections.model import Projection
from schemas.codec import AvroCodec
from streams.kafka.dead_letters import SourceMessage

log = structlog.get_logger()
REDELIVERED = Counter(
    "nexus_stream_projection_redelivered_total", "Messages below a checkpoint", ["projection"]
)
# Advisory lock key space of each stream-processed projection's partitions.
LOCK_SPACES = {"analytics": 0x616E, "anomalies": 0x616F}


@dataclass(frozen=True)
class SinkMetrics:
    applied: Counter
    redelivered: Counter
    seconds: Histogram

    @classmethod
    def of(cls, name: str) -> SinkMetrics:
        """The rollups keep the names dashboards and `bench` read; others are the projector's."""
        if name == "analytics":
            return ROLLUP_METRICS
        return cls(
            metrics.EVENTS_APPLIED.labels(name),
            REDELIVERED.labels(name),
            metrics.BATCH_SECONDS.labels(name),
        )


ROLLUP_METRICS = SinkMetrics(
    Counter("nexus_analytics_events_applied_total", "Tracked events folded into rollups"),
    Counter("nexus_analytics_events_redelivered_total", "Messages below a checkpoint"),
    Histogram("nexus_analytics_batch_seconds", "One rollup batch transaction"),
)


class ProjectionSink:
    """One projection's live version fed by one topic; `close` when the worker stops."""

    def __init__(
        self,
        conn: Connection[Any],
        projection: Projection,
        topic: str,
        codec: AvroCodec,
        dead_letters: DeadLetters,
    ) -> None:
        self.conn, self.projection, self.topic = conn, projection, topic
        self.applier = BatchApplier(projection, topic, codec, dead_letters)
        self.lock_space = LOCK_SPACES[projection.name]
        self.metrics = SinkMetrics.of(projection.name)

    @property
    def name(self) -> str:
        return self.projection.name

    def apply(self, messages: Sequence[SourceMessage]) -> int:
        """Apply the messages not applied yet; returns how many were new."""
        with self.metrics.seconds.time(), self.conn.transaction():
            version = versions.live_version(self.conn, self.name, "share")
            if version is None:
                raise RuntimeError(f"projection {self.name} is not migrated")
            schema = schema_name(self.name, version)
            for partition in sorted({m.partition() or 0 for m in messages}):
                self.conn.execute(
                    "SELECT pg_advisory_xact_lock(%s, %s)", (self.lock_space, partition)
                )
            done = store.load_checkpoints(self.conn, schema, self.topic)
            fresh = unapplied(messages, done)
            applied = self.applier.apply(self.conn, schema, fresh).applied if fresh else 0
        self.metrics.redelivered.inc(len(messages) - len(fresh))
        self.metrics.applied.inc(applied)
        return len(fresh)

    def close(self) -> None:
        self.conn.close()


def unapplied(
    messages: Sequence[SourceMessage], checkpoints: dict[int, int]
) -> list[SourceMessage]:
    """The messages at or past their partition's checkpoint, each offset once.

    After a broker outage the Faust consumer may seek back and fetch again while records of
    the first fetch are still buffered, so one batch can hold an offset twice. Only exact
    repeats are dropped: a batch out of order (a prefetched record ahead of a seek) keeps all."""
    seen: set[tuple[int, int]] = set()
    fresh: list[SourceMessage] = []
    for message in messages:
        at = (message.partition() or 0, message.offset() or 0)
        if at[1] >= checkpoints.get(at[0], 0) and at not in seen:
            seen.add(at)
            fresh.append(message)
    return fresh
