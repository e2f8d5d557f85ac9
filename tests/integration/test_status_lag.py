"""`nexus status` lag for the services that keep their position in a Kafka consumer group."""

from __future__ import annotations

import contextlib
import time

from confluent_kafka import Consumer, Producer, TopicPartition
from prometheus_client import REGISTRY

from infra.config.consumers import CONSUMER_GROUPS
from infra.config.settings import Settings
from infra.local.lag import group_lag
from infra.local.services import lag_for
from streams.kafka.config import consumer_config, producer_config
from streams.kafka.lag import consumer_lag
from streams.kafka.topics import ensure_topics


def test_lag_is_what_each_group_has_not_committed(settings: Settings) -> None:
    ensure_topics(settings)
    producer = Producer(producer_config(settings))
    logical_topics = {t for consumers in CONSUMER_GROUPS.values() for t in consumers.topics}
    for logical in sorted(logical_topics):
        for i in range(3):
            producer.produce(settings.topic(logical), f"{logical}-{i}".encode(), partition=0)
    assert producer.flush(30) == 0
    group = f"{settings.topic_prefix}.notifier"
    consumer = Consumer(consumer_config(settings, group))
    topic = settings.topic("notification-requests")
    consumer.commit(offsets=[TopicPartition(topic, 0, 2)], asynchronous=False)
    consumer.close()

    lags = {service: group_lag(settings, service) for service in CONSUMER_GROUPS}

    # The analytics worker's group reads the tracked events and, for anomalies, the events.
    assert lags == {"command-processor": 3, "notifier": 1, "workflows": 3, "analytics": 6}
    assert lag_for("notifier", settings) == "1"


def test_each_service_reports_its_groups_lag_per_partition_as_a_gauge(settings: Settings) -> None:
    ensure_topics(settings)
    topic = settings.topic("notification-requests")
    producer = Producer(producer_config(settings))
    for i in range(5):
        producer.produce(topic, f"request-{i}".encode(), partition=1)
    assert producer.flush(30) == 0
    group = f"{settings.topic_prefix}.notifier"
    consumer = Consumer(consumer_config(settings, group))
    consumer.commit(offsets=[TopicPartition(topic, 1, 3)], asynchronous=False)
    consumer.close()

    def lag(partition: int) -> float | None:
        labels = {"group": group, "topic": topic, "partition": str(partition)}
        return REGISTRY.get_sample_value("nexus_consumer_lag_messages", labels)

    with consumer_lag(settings, "notifier", every_s=0.2):
        deadline = time.monotonic() + 30
        while lag(1) is None and time.monotonic() < deadline:
            time.sleep(0.1)

    assert [lag(p) for p in range(settings.partitions)] == [0, 2, 0, 0, 0, 0]
    assert isinstance(consumer_lag(settings, "projector"), contextlib.nullcontext)
