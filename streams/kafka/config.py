"""librdkafka configuration for each role, in one place so every client agrees."""

from __future__ import annotations

from typing import Any

from infra.config.settings import Settings

# Java clients hash keys with murmur2; using it here keeps our partitions where any client expects.
PARTITIONER = "murmur2_random"


def producer_config(settings: Settings, **extra: Any) -> dict[str, Any]:
    """Idempotent, acks=all: a delivered message is on every in-sync replica exactly once."""
    return {
        "bootstrap.servers": settings.resolved_kafka_bootstrap,
        "enable.idempotence": True,
        "acks": "all",
        "partitioner": PARTITIONER,
        "linger.ms": 2,
        "compression.type": "lz4",
        "message.timeout.ms": settings.produce_timeout_ms,
        "message.max.bytes": 9 * 1024 * 1024,  # the topics' own limits are what binds
        **extra,
    }


def transactional_producer_config(settings: Settings, transactional_id: str) -> dict[str, Any]:
    return producer_config(
        settings,
        **{
            "transactional.id": transactional_id,
            "transaction.timeout.ms": 30000,
            "message.timeout.ms": 30000,
        },
    )


def consumer_config(settings: Settings, group_id: str, **extra: Any) -> dict[str, Any]:
    """read_committed, manual commits: we decide when an offset counts as processed."""
    return {
        "bootstrap.servers": settings.resolved_kafka_bootstrap,
        "group.id": group_id,
        "isolation.level": "read_committed",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "fetch.wait.max.ms": 100,  # a long poll: the broker answers as soon as data is there
        **extra,
    }


def admin_config(settings: Settings) -> dict[str, Any]:
    return {"bootstrap.servers": settings.resolved_kafka_bootstrap}
