"""The Faust app: an agent per stream-processed projection, one timer for anomalies.

Each agent consumes its projection's topic (`analytics` for the rollups, `events` for the
anomalies); all share the app's consumer group. Agents are thin: take a batch, hand it to
their sink in a thread (PostgreSQL I/O must not block Faust's event loop and its
heartbeats), and return; Faust acknowledges the batch's offsets only after that, so its
commits never run ahead of the sink's checkpoints.

A batch is never acknowledged unapplied: while PostgreSQL is away the agent retries it on a
fresh connection (beating its heartbeat); any other error ends the process at once, before
Faust could commit past the batch, and its supervisor starts a fresh one.

Faust reads uncommitted messages unless it runs exactly-once itself. That is harmless here:
the anomaly watch and the ingestion publish their events outside transactions, and the
events written in transactions (the command processor's) are of types no projection here
handles, so a message of an open or aborted transaction only moves a checkpoint.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, cast

import faust
import psycopg
import structlog
from prometheus_client import Counter

from infra.config.clock import utcnow
from infra.config.settings import Settings
from projections.analytics.rollups import ANALYTICS_PROJECTION
from schemas.tracked_batch import cut
from streams.analytics.messages import TrackedMessage
from streams.analytics.sink import ProjectionSink
from streams.kafka.tracing import batch_span, header_list
from streams.process.faust_worker import AgentBeat, FaustWatch
from streams.process.watchdog import EXIT_WEDGED, Watchdog, exit_now

log = structlog.get_logger()
BATCH = 100  # records per take
# On the analytics topic a record is a collector batch of up to hundreds of events
# (schemas.tracked_batch): fewer per take keep a take's events, so its latency, bounded.
COLLECTOR_BATCH = 30
BATCH_WITHIN_S = 0.5
APPLY_BYTES = 4 * 1024 * 1024  # of records per sink transaction: bounds its time and memory
RETRY_S = 1.0

AnomalyCheck = Callable[[datetime], Awaitable[Any]]
ANOMALY_CHECKS = Counter(
    "nexus_anomaly_checks_total", "Anomaly checks the leader's timer ran, by outcome", ["outcome"]
)


class LiveSink:
    """A sink that outlives its PostgreSQL connection: `connect` makes a fresh one."""

    def __init__(self, connect: Callable[[], ProjectionSink]) -> None:
        self._connect = connect
        self.sink = connect()

    @property
    def topic(self) -> str:
        return self.sink.topic

    @property
    def name(self) -> str:
        return self.sink.name

    def apply_until_done(self, batch: list[TrackedMessage], agent: AgentBeat) -> None:
        """Apply `batch`, on fresh connections while PostgreSQL is away."""
        while True:
            agent.beat()
            try:
                self.sink.apply(batch)
                return
            except psycopg.OperationalError as exc:
                log.warning("analytics_sink_retry", sink=self.name, error=str(exc))
                threading.Event().wait(RETRY_S)
                self._reconnect()

    def _reconnect(self) -> None:
        self.sink.close()
        try:
            self.sink = self._connect()
        except psycopg.OperationalError as exc:  # still away: the next attempt tries again
            log.warning("analytics_sink_unreachable", sink=self.name, error=str(exc))

    def close(self) -> None:
        self.sink.close()


def build_app(
    settings: Settings,
    sinks: Sequence[LiveSink],
    ready: threading.Event,
    watchdog: Watchdog,
    check_anomalies: AnomalyCheck | None = None,
) -> faust.App:
    """`ready` is set once partitions are assigned; the watchdog is ready while the latest
    assignment gives every sink's agent a partition."""
    app = faust.App(
        f"{settings.topic_prefix}.analytics",
        broker=f"kafka://{settings.resolved_kafka_bootstrap}",
        store="memory://",
        datadir=str(settings.home / "faust"),  # not Faust's default, a folder in the cwd
        web_enabled=False,
        topic_allow_declare=False,  # the platform creates its topics (streams.kafka.topics)
        topic_disable_leader=False,
        consumer_auto_offset_reset="earliest",
        # Static membership: a restarted worker takes its partitions back at once.
        consumer_group_instance_id=f"{settings.topic_prefix}.analytics.{settings.instance_id}",
        broker_commit_interval=1.0,
        # A killed worker's partitions move on after this, not after Faust's default 60 s.
        broker_session_timeout=10.0,
        broker_heartbeat_interval=1.0,
        stream_wait_empty=False,
        # Fetch well ahead of the sink: a batch is being written while the next one fills.
        stream_buffer_maxsize=4 * BATCH,
        broker_max_poll_records=BATCH,
        consumer_max_fetch_size=8 * 1024 * 1024,
    )
    watch = FaustWatch(app, watchdog, {sink.topic for sink in sinks})
    for sink in sinks:
        _fold_into(app, sink, watch.agent(sink.name))
    _track_readiness(app, ready)
    if check_anomalies is not None:
        _check_on_leader(app, check_anomalies, settings.anomaly_check_every_s)
    return app


def _fold_into(app: faust.App, sink: LiveSink, agent: AgentBeat) -> None:
    """An agent that applies its topic's messages to `sink`, a batch at a time."""
    topic = app.topic(sink.topic, key_serializer="raw", value_serializer="raw")
    take = COLLECTOR_BATCH if sink.name == ANALYTICS_PROJECTION.name else BATCH

    async def fold(stream: Any) -> None:  # faust.Stream; its stubs lack take_events
        async for events in stream.take_events(take, within=BATCH_WITHIN_S):
            agent.busy()
            batch = [TrackedMessage.of(event.message) for event in events]
            traced = (header_list(event.message.headers) for event in events)
            try:
                with batch_span(f"{sink.name} apply", traced):
                    for run in cut([len(m.source_value or b"") for m in batch], APPLY_BYTES):
                        await asyncio.to_thread(sink.apply_until_done, batch[run], agent)
            except Exception:  # Faust would acknowledge the batch as the agent moves on
                log.exception("analytics_batch_failed", sink=sink.name)
                exit_now(EXIT_WEDGED)
            agent.idle()

    fold.__qualname__ = f"fold_{sink.name}"  # Faust's logs label an agent by its function
    app.agent(topic, name=sink.name)(fold)


def _track_readiness(app: faust.App, ready: threading.Event) -> None:
    async def assigned(*_: Any, **__: Any) -> None:
        ready.set()

    cast(Any, app.on_partitions_assigned).connect(assigned)  # its stubs reject coroutines


def _check_on_leader(app: faust.App, check: AnomalyCheck, every_s: float) -> None:
    async def anomalies() -> None:
        try:
            await check(utcnow())
        except Exception:  # one failed check must not stop the worker; the next retries
            ANOMALY_CHECKS.labels("failed").inc()
            log.exception("anomaly_check_failed")
            return
        ANOMALY_CHECKS.labels("done").inc()

    app.timer(interval=every_s, on_leader=True)(anomalies)
