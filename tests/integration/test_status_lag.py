"""`nexus status` lag for the services that keep their position in a Kafka consumer group."""

from __future__ import annotations

from confluent_kafka import Consumer, Producer, TopicPartition

from infra.config.settings import Settings
from infra.local.lag import GROUP_CONSUMERS, group_lag
from infra.local.services import lag_for
from streams.kafka.config import consumer_config, producer_config
from streams.kafka.topics import ensure_topics


def test_lag_is_what_each_group_has_not_committed(settings: Settings) -> None:
    ensure_topics(settings)
    producer = Producer(producer_config(settings))
    for service, (_, logical) in GROUP_CONSUMERS.items():
        for i in range(3):
            producer.produce(settings.topic(logical), f"{service}-{i}".encode(), partition=0)
    assert producer.flush(30) == 0
    group = f"{settings.topic_prefix}.notifier"
    consumer = Consumer(consumer_config(settings, group))
    topic = settings.topic("notification-requests")
    consumer.commit(offsets=[TopicPartition(topic, 0, 2)], asynchronous=False)
    consumer.close()

    lags = {service: group_lag(settings, service) for service in GROUP_CONSUMERS}

    assert lags == {"command-processor": 3, "notifier": 1, "workflows": 3, "analytics": 3}
    assert lag_for("notifier", settings) == "1"
