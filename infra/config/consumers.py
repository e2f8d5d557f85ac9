"""The services that keep their position in a Kafka consumer group, and what that group reads.

`nexus status` and each service's own `nexus_consumer_lag_messages` gauge compare the group's
committed offsets with these topics' end offsets. The projector keeps its positions in
PostgreSQL instead (`nexus_projection_lag_messages`), the gateway's outcome listener in memory.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ConsumerGroup:
    suffix: str  # the group is `<NEXUS_TOPIC_PREFIX>.<suffix>`
    topics: tuple[str, ...]  # logical topic names (streams.kafka.topics.LOGICAL_TOPICS)

    def group(self, topic_prefix: str) -> str:
        return f"{topic_prefix}.{self.suffix}"


# Keyed by service name (infra.config.scale.SERVICES).
CONSUMER_GROUPS: dict[str, ConsumerGroup] = {
    "command-processor": ConsumerGroup("command-processor", ("commands",)),
    "notifier": ConsumerGroup("notifier", ("notification-requests",)),
    "workflows": ConsumerGroup("workflows", ("events",)),
    # A Faust app's group is its id; its agents fold the rollups and the anomalies.
    "analytics": ConsumerGroup("analytics", ("analytics", "events")),
}
