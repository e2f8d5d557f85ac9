"""The Faust app: one agent folding tracked events into rollups, one timer for anomalies.

Agents are thin: take a batch, hand it to the sink in a thread (PostgreSQL I/O must not
block Faust's event loop and its heartbeats), and return; Faust acknowledges the batch's
offsets only after that, so its commits never run ahead of the sink's checkpoints.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, cast

import faust
import structlog

from infra.settings import Settings
from streams.analytics.messages import TrackedMessage
from streams.analytics.sink import RollupSink

log = structlog.get_logger()
BATCH = 5_000
BATCH_WITHIN_S = 0.5
ANOMALY_EVERY_S = 10.0

AnomalyCheck = Callable[[datetime], Awaitable[Any]]


def build_app(
    settings: Settings,
    sink: RollupSink,
    ready: threading.Event,
    check_anomalies: AnomalyCheck | None = None,
) -> faust.App:
    app = faust.App(
        f"{settings.topic_prefix}.analytics",
        broker=f"kafka://{settings.resolved_kafka_bootstrap}",
        store="memory://",
        datadir=str(settings.home / "faust"),  # not Faust's default, a folder in the cwd
        web_enabled=False,
        topic_allow_declare=False,  # the platform creates its topics (streams.topics)
        topic_disable_leader=False,
        consumer_auto_offset_reset="earliest",
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
    tracked = app.topic(settings.topic("analytics"), key_serializer="raw", value_serializer="raw")

    @app.agent(tracked, name="rollups")
    async def rollups(stream: Any) -> None:  # faust.Stream; its stubs lack take_events
        async for events in stream.take_events(BATCH, within=BATCH_WITHIN_S):
            batch = [TrackedMessage.of(event.message) for event in events]
            await asyncio.to_thread(sink.apply, batch)

    async def assigned(*_: Any, **__: Any) -> None:
        ready.set()

    cast(Any, app.on_partitions_assigned).connect(assigned)  # its stubs reject coroutines

    if check_anomalies is not None:
        check = check_anomalies

        async def anomalies() -> None:
            try:
                await check(datetime.now(UTC))
            except Exception:  # one failed check must not stop the worker; the next retries
                log.exception("anomaly_check_failed")

        app.timer(interval=ANOMALY_EVERY_S, on_leader=True)(anomalies)

    return app
