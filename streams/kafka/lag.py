"""A consumer group's lag, for `nexus status` and as a Prometheus gauge.

`nexus_consumer_lag_messages{group, topic, partition}` is a partition's end offset (under
read_committed, the last stable offset) minus the group's committed offset there, so it
counts transaction markers too: an idle transactional consumer shows up to one per
partition. Every instance of a service reports its whole group, not only the partitions it
holds, so the series outlive any one instance; the alert rules take the max over instances.
The broker is asked from a thread of its own with a client of its own that never joins the
group, so a slow broker delays the gauge, never the consumer.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager

import structlog
from confluent_kafka import Consumer, KafkaException, TopicPartition
from prometheus_client import Gauge

from infra.config.consumers import CONSUMER_GROUPS
from infra.config.settings import Settings
from streams.kafka.config import consumer_config

log = structlog.get_logger()
REPORT_EVERY_S = 10.0  # under Prometheus's 15 s scrape interval
TIMEOUT_S = 5.0

LAG = Gauge(
    "nexus_consumer_lag_messages",
    "Offsets between a partition's end (last stable offset) and its consumer group's"
    " committed offset, transaction markers included",
    ["group", "topic", "partition"],
)


def committed_lag(
    consumer: Consumer, topics: Sequence[str], timeout: float = TIMEOUT_S
) -> dict[tuple[str, int], int]:
    """(topic, partition) -> offsets the group of `consumer` has not committed past; from the
    partition's first offset where it committed none. Raises KafkaException when the broker
    does not answer in time."""
    metadata = consumer.list_topics(timeout=timeout).topics
    partitions = [
        TopicPartition(topic, partition)
        for topic in topics
        if topic in metadata
        for partition in sorted(metadata[topic].partitions)
    ]
    lags: dict[tuple[str, int], int] = {}
    for tp in consumer.committed(partitions, timeout) if partitions else []:
        first, end = consumer.get_watermark_offsets(TopicPartition(tp.topic, tp.partition), timeout)
        lags[(tp.topic, tp.partition)] = max(0, end - max(tp.offset, first))
    return lags


class LagReporter(threading.Thread):
    """Sets the gauge for `group` on `topics` (full names) every `every_s`, until `stop`."""

    def __init__(
        self, settings: Settings, group: str, topics: Sequence[str], every_s: float
    ) -> None:
        super().__init__(name=f"lag {group}", daemon=True)
        self.settings, self.group, self.topics, self.every_s = settings, group, topics, every_s
        self._stopping = threading.Event()

    def run(self) -> None:
        consumer = Consumer(consumer_config(self.settings, self.group))
        try:
            while True:
                self.report(consumer)
                if self._stopping.wait(self.every_s):
                    return
        finally:
            consumer.close()

    def report(self, consumer: Consumer) -> None:
        try:
            lags = committed_lag(consumer, self.topics)
        except KafkaException as exc:  # the broker is away: keep the last values
            log.info("consumer_lag_unknown", group=self.group, error=str(exc.args[0]))
            return
        for (topic, partition), lag in lags.items():
            LAG.labels(self.group, topic, str(partition)).set(lag)

    def stop(self) -> None:
        self._stopping.set()
        self.join(TIMEOUT_S * 3)


def consumer_lag(
    settings: Settings, service: str, every_s: float = REPORT_EVERY_S
) -> AbstractContextManager[None]:
    """Reports the lag of `service`'s consumer group while inside; nothing for a service
    without one (infra.config.consumers)."""
    consumers = CONSUMER_GROUPS.get(service)
    if consumers is None:
        return contextlib.nullcontext()
    topics = [settings.topic(logical) for logical in consumers.topics]
    return _reporting(
        LagReporter(settings, consumers.group(settings.topic_prefix), topics, every_s)
    )


@contextlib.contextmanager
def _reporting(reporter: LagReporter) -> Iterator[None]:
    reporter.start()
    try:
        yield
    finally:
        reporter.stop()
