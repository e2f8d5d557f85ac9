"""Composition root of the analytics worker (`nexus run analytics`)."""

from __future__ import annotations

import threading

import faust
import structlog
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from infra.logging import configure_logging
from infra.settings import Settings
from projections import store
from projections.catalog import projection
from projections.migrations import migrate
from schemas.codec import AvroCodec
from streams.analytics.app import build_app
from streams.analytics.sink import RollupSink
from streams.anomaly_watch import AnomalyWatch
from streams.bus import EventBus
from streams.deadletter import KafkaDeadLetters, utcnow
from streams.health import HealthServer
from streams.kafka_config import admin_config
from streams.topics import ensure_topics

log = structlog.get_logger()


def ensure_leader_topic(settings: Settings) -> None:
    """Faust elects the leader that runs `on_leader` timers through this one-partition
    topic; with topic declaration off (ours are made by streams.topics) we create it."""
    name = f"{settings.topic_prefix}.analytics-__assignor-__leader"
    admin = AdminClient(admin_config(settings))
    if name in admin.list_topics(timeout=30).topics:
        return
    future = admin.create_topics([NewTopic(name, num_partitions=1, replication_factor=1)])[name]
    try:
        future.result()
    except KafkaException as exc:
        if exc.args[0].name() != "TOPIC_ALREADY_EXISTS":
            raise


def run(settings: Settings) -> None:
    configure_logging(settings.log_level, "analytics")
    ensure_topics(settings)
    ensure_leader_topic(settings)
    migrate(settings.resolved_database_url)
    codec = AvroCodec()
    dead_letters = KafkaDeadLetters(settings, "analytics", codec, utcnow)
    conn = store.connect(settings.resolved_database_url)
    sink = RollupSink(conn, projection("analytics"), settings.topic("analytics"), codec,
                      dead_letters)  # fmt: skip
    ready = threading.Event()
    bus = EventBus(settings, codec=codec)
    watch = AnomalyWatch(settings, bus)
    app = build_app(settings, sink, ready, check_anomalies=watch.check)
    health = HealthServer("127.0.0.1", settings.analytics_health_port, ready.is_set)
    health.start()
    log.info("analytics_started", topic=settings.topic("analytics"))
    try:
        faust.Worker(
            app, loglevel=settings.log_level.upper(), quiet=True
        ).execute_from_commandline()
    finally:
        health.stop()
        bus.close()
        conn.close()
