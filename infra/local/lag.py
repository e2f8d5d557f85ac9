"""Consumer lag for `nexus status`: how far each consuming service is behind its topics."""

from __future__ import annotations

import psycopg
from confluent_kafka import Consumer, TopicPartition

from infra.config.consumers import CONSUMER_GROUPS
from infra.config.settings import Settings
from projections.catalog import PROJECTOR_PROJECTIONS
from streams.kafka.config import consumer_config
from streams.kafka.lag import committed_lag


def _high_watermarks(consumer: Consumer, topic: str) -> dict[int, int]:
    partitions = consumer.list_topics(topic, timeout=5).topics[topic].partitions
    return {p: consumer.get_watermark_offsets(TopicPartition(topic, p), 5)[1] for p in partitions}


def group_lag(settings: Settings, service: str) -> int:
    """Messages not yet taken: end offsets minus the group's committed offsets, over every
    topic the group reads (infra.config.consumers)."""
    consumers = CONSUMER_GROUPS[service]
    consumer = Consumer(consumer_config(settings, consumers.group(settings.topic_prefix)))
    try:
        return sum(committed_lag(consumer, [settings.topic(t) for t in consumers.topics]).values())
    finally:
        consumer.close()


def projector_lag(settings: Settings) -> int:
    """The most any of the projector's projections is behind on its topic (offsets,
    transaction markers included)."""
    consumer = Consumer(consumer_config(settings, f"{settings.topic_prefix}.status"))
    try:
        highs = {t: _high_watermarks(consumer, settings.topic(t)) for t in ("events", "outcomes")}
    finally:
        consumer.close()
    with psycopg.connect(settings.resolved_database_url, connect_timeout=5) as conn:
        rows = conn.execute(
            "SELECT name, topic, partition, next_offset FROM public.projection_checkpoints"
            " WHERE name = ANY(%s)",  # the analytics worker keeps the others
            [list(PROJECTOR_PROJECTIONS)],
        ).fetchall()
    checkpoints: dict[str, dict[tuple[str, int], int]] = {}
    for name, topic, partition, next_offset in rows:
        checkpoints.setdefault(name, {})[(topic, partition)] = next_offset
    behind = [
        sum(high - marks.get((topic, p), 0) for p, high in _topic_highs(highs, settings, topic))
        for marks in checkpoints.values()
        for topic in {t for t, _ in marks}
    ]
    return max(behind, default=0)


def _topic_highs(
    highs: dict[str, dict[int, int]], settings: Settings, topic: str
) -> list[tuple[int, int]]:
    for logical, marks in highs.items():
        if settings.topic(logical) == topic:
            return list(marks.items())
    return []
