"""Telling a consumer that stopped fetching from one that has nothing to fetch.

A librdkafka consumer can come back from a broker outage polling happily and receiving
nothing, though the partitions it is assigned hold messages (seen after a broker was
SIGSTOPped for 20 s: one manually assigned consumer of five never fetched again). Its loop
goes round, so a heartbeat alone cannot tell; its position against the broker's end offsets
can. The fix is a fresh client, so callers rebuild theirs when `stalled` says so.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Mapping
from typing import Generic, TypeVar

from confluent_kafka import Consumer, TopicPartition

K = TypeVar("K", bound=Hashable)  # a partition: its number, or a (topic, partition)
# Under read_committed a partition ends with a commit marker that is never delivered, so a
# consumer that read everything is still one offset short of the end.
MARKER = 1


class ProgressCheck(Generic[K]):
    """Judges a consumer's progress at most once per `bound_s` without a message.

    Guarantee: `stalled` is True only when no message arrived for `bound_s` although some
    partition's end offset (for read_committed, the last stable offset) is more than a
    commit marker past the consumer's position and has grown since the consumer was last
    found stalled. An aborted transaction at a partition's end (never delivered, so the
    position stays before it) is therefore taken for a stall at most once.
    """

    def __init__(self, bound_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.bound_s, self._clock = bound_s, clock
        self._since = clock()
        self._judged_ends: dict[K, int] = {}

    def advanced(self) -> None:
        """Messages arrived: the consumer is fetching."""
        self._since = self._clock()

    def postpone(self) -> None:
        """The end offsets could not be had (the broker is away): judge a period later."""
        self._since = self._clock()

    def due(self) -> bool:
        """Whether it is time to ask the broker for end offsets and call `stalled`."""
        return self._clock() - self._since >= self.bound_s

    def stalled(self, positions: Mapping[K, int], ranges: Mapping[K, tuple[int, int]]) -> bool:
        """`positions`: partition -> next offset the consumer will deliver (a partition it
        has no position for starts at its first offset); `ranges`: partition -> (first, end)
        offsets, asked of the broker now. Starts a new period of `bound_s` either way."""
        self._since = self._clock()
        ends = {partition: end for partition, (_, end) in ranges.items()}
        behind = [
            partition
            for partition, (first, end) in ranges.items()
            if end > positions.get(partition, first) + MARKER
            and end > self._judged_ends.get(partition, -1)
        ]
        if behind:
            self._judged_ends.update(ends)
        return bool(behind)


def consumed_positions(
    consumer: Consumer, topic: str, partitions: list[int], fallback: Mapping[int, int]
) -> dict[int, int]:
    """partition -> the consumer's position: librdkafka moves it past the transaction
    markers and aborted records it consumes too, not only past delivered messages. A
    partition with no position yet (nothing consumed since its assignment) takes
    `fallback`'s, or none."""
    found = dict(fallback)
    for tp in consumer.position([TopicPartition(topic, p) for p in partitions]):
        if tp.offset >= 0:
            found[tp.partition] = tp.offset
    return found


def offset_ranges(
    consumer: Consumer, topic: str, partitions: list[int], timeout: float = 5.0
) -> dict[int, tuple[int, int]]:
    """partition -> (first, end) offset, asked of the broker now, under the consumer's
    isolation level: for read_committed the end is the last stable offset. Raises
    KafkaException when the broker does not answer in time (then nothing can be judged)."""
    return {
        partition: consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout)
        for partition in partitions
    }
