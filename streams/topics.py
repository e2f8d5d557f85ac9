"""The platform's topics, created idempotently with the settings' partition count."""

from __future__ import annotations

import time
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from infra.settings import Settings
from streams.kafka_config import admin_config, consumer_config

# All topics share a partition count: command partition p owns partition p of the others.
LOGICAL_TOPICS = ("commands", "events", "outcomes", "deadletter")
FOREVER = {"retention.ms": "-1", "retention.bytes": "-1"}


@dataclass(frozen=True)
class Topics:
    commands: str
    events: str
    outcomes: str
    deadletter: str

    @classmethod
    def from_settings(cls, settings: Settings) -> Topics:
        return cls(*(settings.topic(name) for name in LOGICAL_TOPICS))


def ensure_topics(settings: Settings, timeout: float = 30.0) -> Topics:
    """Create missing topics; refuse to run if commands and events disagree on partitions."""
    topics = Topics.from_settings(settings)
    admin = AdminClient(admin_config(settings))
    existing = admin.list_topics(timeout=timeout).topics
    wanted = [
        NewTopic(name, num_partitions=settings.partitions, replication_factor=1, config=FOREVER)
        for name in (topics.commands, topics.events, topics.outcomes, topics.deadletter)
        if name not in existing
    ]
    if wanted:
        for name, future in admin.create_topics(wanted, request_timeout=timeout).items():
            try:
                future.result()
            except KafkaException as exc:
                if exc.args[0].name() != "TOPIC_ALREADY_EXISTS":
                    raise RuntimeError(f"cannot create topic {name}: {exc}") from exc
    _wait_for_leaders(settings, admin, topics, timeout)
    _check_copartitioned(admin, topics, timeout)
    return topics


def _wait_for_leaders(
    settings: Settings, admin: AdminClient, topics: Topics, timeout: float
) -> None:
    """A new partition answers NOT_LEADER until its leader is serving; ask each one."""
    probe = Consumer(consumer_config(settings, f"{settings.topic_prefix}.topic-probe"))
    deadline = time.monotonic() + timeout
    names = (topics.commands, topics.events, topics.outcomes, topics.deadletter)
    meta = admin.list_topics(timeout=timeout).topics
    while not all(name in meta and meta[name].partitions for name in names):
        if time.monotonic() > deadline:
            raise RuntimeError(f"topics not in the cluster metadata: {names}")
        time.sleep(0.1)
        meta = admin.list_topics(timeout=timeout).topics
    try:
        for name in names:
            for partition in meta[name].partitions:
                _wait_for_partition(probe, TopicPartition(name, partition), deadline)
    finally:
        probe.close()


def _wait_for_partition(probe: Consumer, tp: TopicPartition, deadline: float) -> None:
    while True:
        try:
            probe.get_watermark_offsets(tp, 5)
            return
        except KafkaException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _check_copartitioned(admin: AdminClient, topics: Topics, timeout: float) -> None:
    meta = admin.list_topics(timeout=timeout).topics
    names = (topics.commands, topics.events, topics.outcomes, topics.deadletter)
    counts = {name: len(meta[name].partitions) for name in names}
    if len(set(counts.values())) != 1:
        raise RuntimeError(f"the platform's topics must have equal partitions: {counts}")
