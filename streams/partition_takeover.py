"""Taking a commands partition over: the aggregate states of its events partition.

A takeover reads the partition's latest snapshot and folds the events after it; with no
snapshot it can trust, it folds every event of the partition. Both give the same states.
Reads are read_committed up to each partition's end when called, so a transaction still
open there (a zombie's) is waited out: committed, its events are folded; aborted, skipped.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager

import structlog
from confluent_kafka import Consumer, KafkaException, TopicPartition
from prometheus_client import Counter, Histogram

from aggregates.handling import AggregateStates
from aggregates.registry import DECIDERS
from infra.config.settings import Settings
from schemas.codec import AvroCodec, DecodeError
from streams.kafka.config import consumer_config
from streams.kafka.reading import read_range
from streams.kafka.topics import Topics
from streams.snapshots.loading import LoadedSnapshot, events_topic_id, load_snapshot
from streams.snapshots.records import Key
from streams.snapshots.writer import Resume, SnapshotPolicy

log = structlog.get_logger()
REBUILD_EVENTS = Counter("nexus_rebuild_events_total", "Events folded while rebuilding state")
TAKEOVER_SECONDS = Histogram(
    "nexus_takeover_seconds", "Rebuilding a partition's states", ["source"],
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
)  # fmt: skip


def rebuild_states(
    settings: Settings, topics: Topics, partition: int, codec: AvroCodec, policy: SnapshotPolicy
) -> tuple[AggregateStates, Resume]:
    """The states after every committed event of the events partition, up to its end now:
    its latest usable snapshot plus the events after it, or every event from its start."""
    started = time.perf_counter()
    group = f"{settings.topic_prefix}.rebuild"
    reader = Consumer(consumer_config(settings, group, **{"enable.partition.eof": False}))
    with closing(reader), _cyclic_gc_paused():
        topic_id = events_topic_id(settings, topics.events) if policy.enabled else None
        snapshot, topic_id = _snapshot(reader, codec, topics.snapshots, partition, policy, topic_id)
        loaded = time.perf_counter()
        low, end = reader.get_watermark_offsets(TopicPartition(topics.events, partition), 30)
        if snapshot is not None and snapshot.covered_offset > end:
            log.warning("snapshot_ignored", partition=partition, reason="ahead_of_events")
            snapshot = None
        states = snapshot.states if snapshot is not None else AggregateStates()
        start = low if snapshot is None else max(low, snapshot.covered_offset)
        folded, touched = _fold_range(states, codec, reader, topics.events, partition, start, end)
    source = "events" if snapshot is None else "snapshot"
    seconds = time.perf_counter() - started
    TAKEOVER_SECONDS.labels(source=source).observe(seconds)
    log.info(
        "partition_rebuilt", partition=partition, source=source, aggregates=len(states.states),
        events_folded=folded, seconds=round(seconds, 3),
        snapshot_seconds=round(loaded - started, 3),
    )  # fmt: skip
    generation = None if snapshot is None else snapshot.generation
    return states, Resume(end, folded, frozenset(touched), generation, topic_id)


@contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    """Rebuilding allocates a partition's worth of acyclic objects (states, decoded records);
    each burst made the cyclic collector walk the whole growing heap again, which doubled the
    time to load a snapshot of 100,000 aggregates. There are no cycles here for it to find.
    It runs again when the rebuild ends; of concurrent rebuilds, the one that paused it
    resumes it."""
    paused = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if paused:
            gc.enable()


def _snapshot(
    reader: Consumer,
    codec: AvroCodec,
    topic: str,
    partition: int,
    policy: SnapshotPolicy,
    topic_id: str | None,
) -> tuple[LoadedSnapshot | None, str | None]:
    """The snapshot to start from, if any, and the events topic id to write snapshots with
    (None when snapshots are off or their topic cannot be read: then none are written)."""
    if topic_id is None:
        return None, None
    try:
        return load_snapshot(reader, codec, topic, partition, policy.version, topic_id), topic_id
    except KafkaException as exc:
        log.warning("snapshots_unavailable", partition=partition, error=str(exc.args[0]))
    except Exception:  # a snapshot is a cache: a bug in reading it must not stop a takeover
        log.exception("snapshot_ignored", partition=partition, reason="load_failed")
    return None, None


def _fold_range(
    states: AggregateStates,
    codec: AvroCodec,
    reader: Consumer,
    topic: str,
    partition: int,
    start: int,
    end: int,
) -> tuple[int, set[Key]]:
    """Fold events [start, end) into `states`: how many were folded, and whose they were."""
    folded, touched = 0, set[Key]()
    for message in read_range(reader, topic, partition, start, end):
        try:
            _, record = codec.decode(message.value())
        except DecodeError:
            continue  # the projector dead-letters foreign events; state is built from ours
        if record["aggregate_type"] in DECIDERS:  # others are not decided here
            states.apply(record)
            touched.add((record["aggregate_type"], record["aggregate_id"]))
            folded += 1
    REBUILD_EVENTS.inc(folded)
    return folded, touched
