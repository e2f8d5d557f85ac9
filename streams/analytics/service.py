"""Composition root of the analytics worker (`nexus run analytics`): a sink per projection
in `catalog.STREAM_PROCESSED` (the rollups and the anomalies), the Faust app around them,
and the anomaly watch on its leader timer."""

from __future__ import annotations

import threading
from contextlib import ExitStack

import structlog
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from infra.config.clock import utcnow
from infra.config.settings import Settings
from projections import store
from projections.catalog import STREAM_PROCESSED, projection
from projections.migrations import migrate
from sagas.event_owners import ANOMALY_WATCH
from schemas.codec import AvroCodec
from streams.analytics.app import LiveSink, build_app
from streams.analytics.sink import ProjectionSink
from streams.anomaly_watch import AnomalyWatch
from streams.bus import EventBus
from streams.kafka.config import admin_config
from streams.kafka.dead_letters import KafkaDeadLetters
from streams.process.faust_worker import faust_run
from streams.process.serve import Process, serve, watchdog_for

log = structlog.get_logger()


def ensure_leader_topic(settings: Settings) -> None:
    """Faust elects the leader that runs `on_leader` timers through this one-partition
    topic; with topic declaration off (ours are made by streams.kafka.topics) we create it."""
    name = f"{settings.topic_prefix}.analytics-__assignor-__leader"
    admin = AdminClient(admin_config(settings))
    if name in admin.list_topics(timeout=30).topics:
        return
    topic = NewTopic(name, num_partitions=1, replication_factor=settings.kafka_replication.factor)
    future = admin.create_topics([topic])[name]
    try:
        future.result()
    except KafkaException as exc:
        if exc.args[0].name() != "TOPIC_ALREADY_EXISTS":
            raise


def live_sinks(settings: Settings, codec: AvroCodec) -> list[LiveSink]:
    """A sink per stream-processed projection, each with its own connection: their agents'
    batches run in threads at the same time."""
    return [_live_sink(settings, codec, name) for name in sorted(STREAM_PROCESSED)]


def _live_sink(settings: Settings, codec: AvroCodec, name: str) -> LiveSink:
    target = projection(name)
    # Dead letters name the consumer: the rollups keep theirs, others the projector's.
    consumer = "analytics" if name == "analytics" else f"projection.{name}"
    dead_letters = KafkaDeadLetters(settings, consumer, codec, utcnow)

    def connect() -> ProjectionSink:
        # Faust resumes from the offsets it committed to Kafka, not from the sink's checkpoints
        conn = store.connect(settings.resolved_database_url, durable_commits=True)
        return ProjectionSink(conn, target, settings.topic(target.topic), codec, dead_letters)

    return LiveSink(connect)


def run(settings: Settings) -> None:
    def build(resources: ExitStack) -> Process:
        ensure_leader_topic(settings)
        migrate(settings.resolved_database_url)
        codec = AvroCodec()
        sinks = live_sinks(settings, codec)
        for sink in sinks:
            resources.callback(sink.close)
        ready = threading.Event()
        bus = EventBus(settings, codec=codec, writer=ANOMALY_WATCH)
        resources.callback(bus.close)
        watch = AnomalyWatch(settings, bus)
        watchdog = watchdog_for(settings)
        app = build_app(settings, sinks, ready, watchdog, check_anomalies=watch.check)
        log.info("topics", names=sorted({sink.topic for sink in sinks}))
        return Process(ready.is_set, faust_run(app, settings.log_level), watchdog)

    serve("analytics", settings, build, health_port=settings.analytics_health_port)
