"""The platform's topics, created idempotently with the settings' partition count."""

from __future__ import annotations

import time
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewTopic,
    ResourceType,
)

from infra.config.settings import Replication, Settings
from streams.kafka.config import admin_config, consumer_config

# All topics share a partition count: command partition p owns partition p of the others.
LOGICAL_TOPICS = (
    "commands",
    "events",
    "outcomes",
    "deadletter",
    "notification-requests",
    "notifications",
    "analytics",
    "analytics-rejected",
    "snapshots",
)
# A 1 MiB HTTP body grows a little on its way to an event; a dead letter wraps a whole
# message of any of the others, so its topic takes twice as much.
MAX_MESSAGE_BYTES = 4 * 1024 * 1024
DEAD_LETTER_MAX_BYTES = 2 * MAX_MESSAGE_BYTES
# Command-side snapshots (streams/snapshots) are a cache: only the latest record of a key
# counts. Hourly segments let the cleaner compact all but the last hour.
COMPACTED = {"snapshots": {"cleanup.policy": "compact", "segment.ms": str(3600 * 1000)}}


def topic_config(logical: str, replication: Replication) -> dict[str, str]:
    limit = DEAD_LETTER_MAX_BYTES if logical == "deadletter" else MAX_MESSAGE_BYTES
    return {
        "retention.ms": "-1",
        "retention.bytes": "-1",
        "max.message.bytes": str(limit),
        "min.insync.replicas": str(replication.min_insync),
        **COMPACTED.get(logical, {}),
    }


@dataclass(frozen=True)
class Topics:
    commands: str
    events: str
    outcomes: str
    deadletter: str
    notification_requests: str
    notifications: str  # the notification sagas' events
    analytics: str  # tracked (ingested) events
    analytics_rejected: str  # ingested items the tracking plan refused
    snapshots: str  # the command side's aggregate snapshots (streams/snapshots)

    @classmethod
    def from_settings(cls, settings: Settings) -> Topics:
        return cls(*(settings.topic(name) for name in LOGICAL_TOPICS))

    def by_logical_name(self) -> dict[str, str]:
        return dict(zip(LOGICAL_TOPICS, self.names(), strict=True))

    def names(self) -> tuple[str, ...]:
        return (
            self.commands,
            self.events,
            self.outcomes,
            self.deadletter,
            self.notification_requests,
            self.notifications,
            self.analytics,
            self.analytics_rejected,
            self.snapshots,
        )


def ensure_topics(settings: Settings, timeout: float = 30.0) -> Topics:
    """Create missing topics, each with `settings.kafka_replication`; refuse to run if
    commands and events disagree on partitions or a topic has fewer replicas than wanted."""
    topics = Topics.from_settings(settings)
    replication = settings.kafka_replication
    admin = AdminClient(admin_config(settings))
    existing = admin.list_topics(timeout=timeout).topics
    wanted = [
        NewTopic(
            name,
            num_partitions=settings.partitions,
            replication_factor=replication.factor,
            config=topic_config(logical, replication),
        )
        for logical, name in topics.by_logical_name().items()
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
    _check_replicated(admin, topics, replication, timeout)
    _update_configs(admin, topics, [t.topic for t in wanted], replication, timeout)
    return topics


def _update_configs(
    admin: AdminClient,
    topics: Topics,
    created: list[str],
    replication: Replication,
    timeout: float,
) -> None:
    """Topics made by an older release get today's limits too."""
    resources = [
        ConfigResource(
            ResourceType.TOPIC,
            name,
            incremental_configs=[
                ConfigEntry(key, value, incremental_operation=AlterConfigOpType.SET)
                for key, value in topic_config(logical, replication).items()
            ],
        )
        for logical, name in topics.by_logical_name().items()
        if name not in created
    ]
    if resources:
        for future in admin.incremental_alter_configs(resources, request_timeout=timeout).values():
            future.result()


def _wait_for_leaders(
    settings: Settings, admin: AdminClient, topics: Topics, timeout: float
) -> None:
    """A new partition answers NOT_LEADER until its leader is serving; ask each one."""
    probe = Consumer(consumer_config(settings, f"{settings.topic_prefix}.topic-probe"))
    deadline = time.monotonic() + timeout
    names = topics.names()
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
    names = topics.names()
    counts = {name: len(meta[name].partitions) for name in names}
    if len(set(counts.values())) != 1:
        raise RuntimeError(f"the platform's topics must have equal partitions: {counts}")


def _check_replicated(
    admin: AdminClient, topics: Topics, replication: Replication, timeout: float
) -> None:
    """A topic made for a smaller cluster would refuse every write under min.insync.replicas,
    or lose acknowledged ones with a broker: say so rather than run on it."""
    meta = admin.list_topics(timeout=timeout).topics
    replicas = {
        name: min(len(p.replicas) for p in meta[name].partitions.values())
        for name in topics.names()
    }
    short = {name: count for name, count in replicas.items() if count < replication.factor}
    if short:
        raise RuntimeError(
            f"topics with fewer than {replication.factor} replicas: {short}; reassign their"
            " partitions (kafka-reassign-partitions) or start from a fresh cluster"
        )
