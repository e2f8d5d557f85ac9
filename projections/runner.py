"""ProjectionRunner: a thread that keeps one projection's live version up to date.

Each batch commits with its checkpoints while holding a share lock on the projection's
registry row. A replay swaps versions under FOR UPDATE on that row, so a batch never lands
in a version that stopped being live, and the runner notices the swap at its next batch.
Of several projector instances, one at a time keeps a projection (keeper.py).

Heal, never wedge: the thread beats its heartbeat every poll, and a consumer that polls on
without receiving what the broker holds for it (streams.kafka.progress) is replaced by a
fresh one, assigned at the checkpoints again; nothing is skipped or applied twice.

Poison events: a batch whose handler fails on an event rolls back and is tried again from
the checkpoints, NEXUS_PROJECTION_MAX_TRIES times in all; meanwhile `retrying()` holds (the
projector is not ready). On its last try the event is dead-lettered with the error and the
batch commits without it (projections.batch), so later events are applied, each once.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import structlog
from confluent_kafka import KafkaError, KafkaException, Message
from psycopg import Connection

from infra.config.settings import Settings
from projections import keeper, store, versions
from projections.attempts import Attempts
from projections.batch import BatchApplier, EventsFailed
from projections.catalog import schema_name
from projections.kafka_io import (
    assign_at,
    lag,
    poll,
    projection_consumer,
    topic_partitions,
)
from projections.metrics import BATCH_SECONDS, EVENTS_APPLIED, LAG, RETRYING
from projections.model import Projection
from schemas.codec import AvroCodec
from streams.kafka.dead_letters import KafkaDeadLetters
from streams.kafka.progress import ProgressCheck, consumed_positions, offset_ranges
from streams.kafka.tracing import batch_span
from streams.process.watchdog import Watchdog

log = structlog.get_logger()

RETRY_SECONDS = 1.0
LAG_EVERY_SECONDS = 1.0


class VersionChanged(Exception):
    """The live version moved (a replay swapped it): re-seek to the new version."""


class ConsumerStalled(Exception):
    """The consumer stopped receiving what the broker holds: replace it, then re-seek."""


class ProjectionRunner(threading.Thread):
    def __init__(
        self,
        settings: Settings,
        projection: Projection,
        *,
        codec: AvroCodec,
        now: Callable[[], datetime],
        batch_size: int = 2000,
        watchdog: Watchdog | None = None,
    ) -> None:
        super().__init__(name=f"projection-{projection.name}", daemon=True)
        self.settings, self.projection, self.batch_size = settings, projection, batch_size
        self.topic = settings.topic(projection.topic)
        self.ready = threading.Event()
        self.standby = threading.Event()  # another projector instance keeps it (keeper.py)
        self.stopping = threading.Event()
        self.log = log.bind(projection=projection.name)
        self._consumer = projection_consumer(settings, projection.name)
        self._dead_letters = KafkaDeadLetters(settings, f"projection.{projection.name}", codec, now)
        self._attempts = Attempts(settings.projection_max_tries)
        self._applier = BatchApplier(
            projection,
            self.topic,
            codec,
            self._dead_letters,
            self._attempts.last_try,
            audit=settings.projection_audit,
        )
        self._lag_at = 0.0
        self._positions: dict[int, int] = {}  # partition -> next offset, as committed
        self.watchdog = watchdog or Watchdog(settings.watchdog_s)
        self._heartbeat = self.watchdog.heartbeat(f"projection {projection.name}")
        self._progress: ProgressCheck[int] = ProgressCheck(settings.watchdog_s)

    def stop(self) -> None:
        self.stopping.set()

    def retrying(self) -> bool:
        """Events failed and are tried again: the projection is held up until it gives up."""
        return self._attempts.retrying()

    def run(self) -> None:
        conn: Connection[Any] | None = None
        partitions: list[int] = []
        try:
            while not self.stopping.is_set():
                self._heartbeat.beat()
                try:
                    with self._heartbeat.waiting():  # for the topic, or for another instance
                        partitions = partitions or topic_partitions(
                            self._consumer, self.topic, self.stopping, math.inf
                        )
                        if not partitions:
                            break  # stopped before the topic existed
                        if conn is None or conn.closed:
                            conn = store.connect(self.settings.resolved_database_url)
                            if not keeper.keep(
                                conn, self.projection.name, self.stopping, self.standby
                            ):
                                break  # stopped while another projector instance kept it
                    version = self._seek(conn, partitions)
                    self.ready.set()
                    self._follow(conn, partitions, version)
                except VersionChanged:
                    self.log.info("projection_version_changed")
                except ConsumerStalled:
                    self._replace_consumer()
                except EventsFailed:  # logged by _apply
                    self.stopping.wait(RETRY_SECONDS)
                except Exception:
                    self.log.exception("projection_batch_failed")
                    self.stopping.wait(RETRY_SECONDS)
        finally:
            self._close(conn)
        self.watchdog.retire(self._heartbeat)

    def _seek(self, conn: Connection[Any], partitions: list[int]) -> int:
        with conn.transaction():
            version = versions.live_version(conn, self.projection.name)
            if version is None:
                raise RuntimeError(f"projection {self.projection.name} is not migrated")
            schema = schema_name(self.projection.name, version)
            offsets = store.load_checkpoints(conn, schema, self.topic)
        assign_at(self._consumer, self.topic, partitions, offsets)
        self._positions = offsets
        self.log.info("projection_assigned", version=version, checkpoints=offsets)
        return version

    def _follow(self, conn: Connection[Any], partitions: list[int], version: int) -> None:
        while not self.stopping.is_set():
            self._heartbeat.beat()
            polled = poll(self._consumer, self.batch_size, 0.1)
            if polled.messages:
                self._progress.advanced()
                self._apply(conn, version, polled.messages)
            elif self._progress.due():
                self._check_progress(partitions)
            self._report_lag(partitions)

    def _check_progress(self, partitions: list[int]) -> None:
        try:
            ranges = offset_ranges(self._consumer, self.topic, partitions)
        except KafkaException as exc:
            if exc.args[0].code() == KafkaError._UNKNOWN_PARTITION:
                # The broker answers, but this client lost its partitions' metadata after an
                # outage and never fetches again (seen after a 20 s broker pause): replace it.
                self.log.warning("projection_consumer_stalled", error=str(exc.args[0]))
                raise ConsumerStalled from exc
            self.log.info("projection_progress_unknown", error=str(exc.args[0]))  # broker away
            self._progress.postpone()
            return
        positions = consumed_positions(self._consumer, self.topic, partitions, self._positions)
        if self._progress.stalled(positions, ranges):
            self.log.warning("projection_consumer_stalled", positions=positions, ends=ranges)
            raise ConsumerStalled

    def _replace_consumer(self) -> None:
        """A fresh client: whatever state the old one is stuck in goes with it."""
        self._consumer.close()
        self._consumer = projection_consumer(self.settings, self.projection.name)
        self.log.info("projection_consumer_replaced")

    def _apply(self, conn: Connection[Any], version: int, messages: list[Message]) -> None:
        started = time.perf_counter()
        name = f"{self.projection.name} apply"
        try:
            with batch_span(name, (m.headers() for m in messages)), conn.transaction():
                if versions.live_version(conn, self.projection.name, "share") != version:
                    raise VersionChanged
                outcome = self._applier.apply(
                    conn, schema_name(self.projection.name, version), messages
                )
        except EventsFailed as failed:
            self._count_failures(failed)
            raise  # rolled back: run() waits, then seeks to the checkpoints again
        self._attempts.committed(outcome.offsets)
        if not self._attempts.retrying():
            RETRYING.labels(self.projection.name).set(0)
        self._positions.update(outcome.offsets)
        EVENTS_APPLIED.labels(self.projection.name).inc(outcome.applied)
        BATCH_SECONDS.labels(self.projection.name).observe(time.perf_counter() - started)
        if outcome.dead_letters:
            self.log.warning("projection_dead_letters", count=outcome.dead_letters)

    def _count_failures(self, failed: EventsFailed) -> None:
        self._attempts.failed(failed.failures)
        RETRYING.labels(self.projection.name).set(len(failed.failures))
        for (partition, offset), error in failed.failures.items():
            self.log.warning(
                "projection_event_failed",
                position=f"{partition}-{offset}",
                tries=self._attempts.tries((partition, offset)),
                max_tries=self._attempts.limit,
                error=error,
            )

    def _report_lag(self, partitions: list[int]) -> None:
        if time.monotonic() - self._lag_at < LAG_EVERY_SECONDS:
            return
        self._lag_at = time.monotonic()
        LAG.labels(self.projection.name).set(
            lag(self._consumer, self.topic, self._positions, partitions)
        )

    def _close(self, conn: Connection[Any] | None) -> None:
        self._consumer.close()
        self._dead_letters.producer.flush(5)
        if conn is not None:
            conn.close()
