"""Applies batches of tracked events to the live `analytics` projection, exactly once.

Inside one transaction: share-lock the projection's registry row (a replay's swap waits
for us, and we see its new version next time), lock the batch's partitions (a worker that
lost them in a rebalance cannot interleave), read their checkpoints, drop what is below
them, fold the rest and write rows and checkpoints together.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import structlog
from prometheus_client import Counter, Histogram
from psycopg import Connection

from projections import store, versions
from projections.batch import BatchApplier, DeadLetters
from projections.catalog import schema_name
from projections.model import Projection
from schemas.codec import AvroCodec
from streams.deadletter import SourceMessage

log = structlog.get_logger()
APPLIED = Counter("nexus_analytics_events_applied_total", "Tracked events folded into rollups")
SKIPPED = Counter("nexus_analytics_events_redelivered_total", "Messages below a checkpoint")
BATCH_SECONDS = Histogram("nexus_analytics_batch_seconds", "One rollup batch transaction")
LOCK_SPACE = 0x616E  # advisory lock key space of analytics partitions


class RollupSink:
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

    def apply(self, messages: Sequence[SourceMessage]) -> int:
        """Fold the messages not applied yet; returns how many were applied."""
        with BATCH_SECONDS.time(), self.conn.transaction():
            version = versions.live_version(self.conn, self.projection.name, "share")
            if version is None:
                raise RuntimeError(f"projection {self.projection.name} is not migrated")
            schema = schema_name(self.projection.name, version)
            partitions = sorted({m.partition() or 0 for m in messages})
            for partition in partitions:
                self.conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", (LOCK_SPACE, partition))
            done = store.load_checkpoints(self.conn, schema, self.topic)
            fresh = [m for m in messages if (m.offset() or 0) >= done.get(m.partition() or 0, 0)]
            SKIPPED.inc(len(messages) - len(fresh))
            if fresh:
                self.applier.apply(self.conn, schema, fresh)
        APPLIED.inc(len(fresh))
        return len(fresh)
