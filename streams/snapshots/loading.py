"""Finding and reading the latest snapshot of one partition, or saying why there is none.

The latest head is the last committed record keyed `head` of the partition; it is searched
for from the end, in windows growing eightfold, because heads are the last record of each
snapshot transaction and the partition's one writer appends nothing else. Its chunks lie
between its base offset and itself. Anything that does not check out (another decider
version, another incarnation of the events topic, a chunk missing or undecodable) makes
`load_snapshot` return None with a `snapshot_ignored` log line: the caller folds every event.
"""

from __future__ import annotations

from dataclasses import dataclass

import structlog
from confluent_kafka import Consumer, KafkaException, Message, TopicCollection, TopicPartition
from confluent_kafka.admin import AdminClient

from aggregates.handling import AggregateStates
from infra.config.settings import Settings
from schemas.codec import AvroCodec, DecodeError
from streams.kafka.config import admin_config
from streams.kafka.reading import read_range
from streams.snapshots.records import HEAD_KEY, Generation, Head, SnapshotInvalid, apply_chunks

log = structlog.get_logger()
HEAD_WINDOW = 64
TIMEOUT_S = 30


@dataclass(frozen=True)
class LoadedSnapshot:
    states: AggregateStates
    covered_offset: int
    generation: Generation


def events_topic_id(settings: Settings, topic: str) -> str | None:
    """The topic's Kafka id, which a recreated topic does not share; None if unknown."""
    admin = AdminClient(admin_config(settings))
    try:
        [future] = admin.describe_topics(TopicCollection([topic]), request_timeout=10).values()
        return str(future.result().topic_id)
    except KafkaException as exc:
        log.warning("topic_id_unknown", topic=topic, error=str(exc.args[0]))
        return None


def latest_head(reader: Consumer, topic: str, partition: int) -> Message | None:
    """The partition's last committed head record, if it has any."""
    low, end = reader.get_watermark_offsets(TopicPartition(topic, partition), TIMEOUT_S)
    window = HEAD_WINDOW
    while end > low:
        start = max(low, end - window)
        found = None
        for message in read_range(reader, topic, partition, start, end):
            if message.key() == HEAD_KEY:
                found = message
        if found is not None:
            return found
        end, window = start, window * 8
    return None


def load_snapshot(
    reader: Consumer,
    codec: AvroCodec,
    topic: str,
    partition: int,
    version: str,
    topic_id: str,
) -> LoadedSnapshot | None:
    """The latest snapshot of `partition` if it is whole and of `version` and `topic_id`.

    Raises KafkaException if the snapshots topic cannot be read at all (say, it is gone).
    """
    found = latest_head(reader, topic, partition)
    if found is None:
        log.info("snapshot_none", partition=partition)
        return None
    try:
        head = Head.decode(codec, found.value())
        _check(head, version, topic_id, partition)
        chunks = read_range(reader, topic, partition, head.base_offset, found.offset())
        states, entries = apply_chunks(codec, head, (m.value() for m in chunks))
    except (DecodeError, ValueError) as err:  # SnapshotInvalid and DataError are ValueErrors
        reason = getattr(err, "reason", "state_invalid")
        log.warning("snapshot_ignored", partition=partition, reason=reason, detail=str(err))
        return None
    generation = Generation(head.generation, head.base_offset, head.chunks, entries)
    return LoadedSnapshot(states, head.covered_offset, generation)


def _check(head: Head, version: str, topic_id: str, partition: int) -> None:
    if head.decider_version != version:
        raise SnapshotInvalid("decider_version", f"{head.decider_version}, not {version}")
    if head.events_topic_id != topic_id:
        raise SnapshotInvalid("events_topic", f"of topic id {head.events_topic_id}")
    if head.events_partition != partition:
        raise SnapshotInvalid("events_partition", f"of partition {head.events_partition}")
