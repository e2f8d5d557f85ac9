"""The Faust app of the workflows worker: one agent on the domain-events topic.

The agent is thin: take a batch, hand it to `WorkflowRunner.handle` in a thread (PostgreSQL
and producer flushes must not block Faust's event loop and its heartbeats), and return.
`take_events` acknowledges a batch when the agent moves on, even when it was cancelled
mid-batch (a stop, a SIGTERM); the agent therefore holds one extra reference on every
message and drops it only once Kafka acknowledged the batch's requests, so Faust's
commits never run ahead of them. The app's watchdog (streams.process.faust_worker) sees the
event loop, the agent (beating while its batch is retried) and the consumer's progress.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any, cast

import faust
from faust.transport.drivers import aiokafka as faust_kafka
from faust.types import TransportT

from infra.config.settings import Settings
from streams.kafka.tracing import header_list
from streams.process.faust_worker import FaustWatch
from streams.process.watchdog import Watchdog
from streams.workflows.runner import Delivered, WorkflowRunner

BATCH = 500
BATCH_WITHIN_S = 0.1


class _ReadCommittedThread(faust_kafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        # Faust reads committed only under its exactly-once guarantee, which we do not use;
        # aiokafka takes the level from here when the consumer starts.
        consumer._isolation_level = "read_committed"
        return consumer


class _ReadCommittedConsumer(faust_kafka.Consumer):
    def _new_consumer_thread(self) -> faust_kafka.AIOKafkaConsumerThread:
        return _ReadCommittedThread(self, loop=self.loop, beacon=self.beacon)


class _ReadCommittedTransport(faust_kafka.Transport):
    Consumer = _ReadCommittedConsumer


class ReadCommittedApp(faust.App):
    """A Faust app whose consumer skips aborted and open transactions, as every Nexus
    consumer does: the command processor writes the events topic in transactions."""

    def _new_transport(self) -> TransportT:
        return _ReadCommittedTransport(self.conf.broker_consumer, self)


def build_app(
    settings: Settings,
    runner: WorkflowRunner,
    ready: threading.Event,
    group: str,
    watchdog: Watchdog,
) -> faust.App:
    """The app, named `group`: Faust uses its id as the consumer group."""
    app = ReadCommittedApp(
        group,
        broker=f"kafka://{settings.resolved_kafka_bootstrap}",
        store="memory://",
        datadir=str(settings.home / "faust"),  # not Faust's default, a folder in the cwd
        web_enabled=False,
        topic_allow_declare=False,  # the platform creates its topics (streams.kafka.topics)
        topic_disable_leader=True,  # no on_leader timers: no leader topic to create
        consumer_auto_offset_reset=settings.workflows_start_from,
        # Static membership: a restarted worker takes its partitions back at once.
        consumer_group_instance_id=f"{group}.{settings.instance_id}",
        broker_commit_interval=1.0,
        # A killed worker's partitions move on after this, not after Faust's default 60 s.
        broker_session_timeout=10.0,
        broker_heartbeat_interval=1.0,
        stream_wait_empty=False,
        broker_max_poll_records=BATCH,
    )
    events = app.topic(settings.topic("events"), key_serializer="raw", value_serializer="raw")
    agent = FaustWatch(app, watchdog, [settings.topic("events")]).agent("workflows")

    @app.agent(events, name="workflows")
    async def workflows(stream: Any) -> None:  # faust.Stream; its stubs lack take_events
        async for batch in stream.take_events(BATCH, within=BATCH_WITHIN_S):
            agent.busy()
            messages = [event.message for event in batch]
            for message in messages:
                message.incref()  # held: see the module docstring
            delivered = [
                Delivered(m.partition, m.offset, m.value, header_list(m.headers) or ())
                for m in messages
            ]
            try:
                done = await asyncio.to_thread(runner.handle, delivered, agent.beat)
            except asyncio.CancelledError:
                runner.stop()  # the thread gives up; the held batch is never committed
                raise
            if done:
                for message in messages:
                    message.decref()
            agent.idle()

    async def assigned(*_: Any, **__: Any) -> None:
        ready.set()

    cast(Any, app.on_partitions_assigned).connect(assigned)  # its stubs reject coroutines
    return app
