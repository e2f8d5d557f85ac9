"""One commands partition's single writer: its transactional producer and aggregate states.

Each partition has its own transactional id, so a new owner's init_transactions fences a
zombie and aborts whatever it left open. A batch of commands becomes one transaction:
events, outcomes, dead letters, the commands offset and, now and then, a snapshot of the
partition's aggregates (streams/snapshots) commit or vanish together.

Taking a partition over reads its latest snapshot and folds the events after it; with no
snapshot it can trust, it folds every event of the partition. Both give the same states.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from datetime import datetime

import structlog
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from prometheus_client import Counter, Histogram

from aggregates.handling import AggregateStates, Decision, decide_command, internal_error
from aggregates.registry import DECIDERS
from infra.config.settings import Settings
from schemas.codec import AvroCodec, DecodeError
from streams.kafka.config import consumer_config
from streams.kafka.dead_letters import dead_letter
from streams.kafka.reading import read_range
from streams.kafka.topics import Topics
from streams.kafka.tracing import batch_span, headers_out, record_span
from streams.kafka.transactions import TransactionalProducer
from streams.snapshots.loading import LoadedSnapshot, events_topic_id, load_snapshot
from streams.snapshots.records import Key
from streams.snapshots.writer import Resume, SnapshotPolicy, SnapshotWriter

log = structlog.get_logger()
COMMANDS = Counter("nexus_commands_total", "Commands decided", ["status"])
BATCH_SECONDS = Histogram("nexus_command_batch_seconds", "One partition batch transaction")
REBUILD_EVENTS = Counter("nexus_rebuild_events_total", "Events folded while rebuilding state")
TAKEOVER_SECONDS = Histogram(
    "nexus_takeover_seconds", "Rebuilding a partition's states", ["source"],
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
)  # fmt: skip
NO_SNAPSHOT = Resume(0, 0, frozenset(), None, None)
CONSUMER_NAME = "command-processor"


class PartitionWriter:
    def __init__(
        self,
        settings: Settings,
        topics: Topics,
        partition: int,
        codec: AvroCodec,
        now: Callable[[], datetime],
        policy: SnapshotPolicy | None = None,
    ) -> None:
        self.settings, self.topics, self.partition = settings, topics, partition
        self.codec, self.now = codec, now
        self.policy = policy or SnapshotPolicy.from_settings(settings)
        self.states = AggregateStates()
        self.snapshots = self._snapshot_writer(NO_SNAPSHOT)
        self._delivery_errors: list[KafkaError] = []
        self._last_event_offset: int | None = None
        transactional_id = f"{settings.topic_prefix}.command-processor.{partition}"
        self.transaction = TransactionalProducer(settings, transactional_id)
        self.producer = self.transaction.producer

    def open(self) -> None:
        self.transaction.open()
        self.states, resume = rebuild_states(
            self.settings, self.topics, self.partition, self.codec, self.policy
        )
        self.snapshots = self._snapshot_writer(resume)

    def _snapshot_writer(self, resume: Resume) -> SnapshotWriter:
        topic = self.topics.snapshots
        return SnapshotWriter(self.policy, self.codec, topic, self.partition, resume, self.now)

    def close(self) -> None:
        self.producer.flush(10)

    def process(self, batch: list[Message], consumer: Consumer) -> None:
        started = time.perf_counter()
        staged = self.states.overlay()
        decisions: list[Decision] = []

        def write(_: Producer) -> None:
            self._delivery_errors.clear()
            self._last_event_offset = None
            traced: list[tuple[Decision, list[tuple[str, bytes]]]] = []
            for message in batch:
                with record_span("decide command", message.headers()):
                    if (decision := self._decide(message, staged)) is not None:
                        traced.append((decision, headers_out()))
            decisions.extend(decision for decision, _ in traced)
            self._flush_events(decisions)
            for decision, headers in traced:
                outcome = self.codec.encode("command.outcome", decision.outcome)
                self._produce(
                    self.topics.outcomes, decision.command["command_id"], outcome, None, headers
                )
            if self.snapshots.due(_event_count(decisions)):
                self.snapshots.write(self.producer, self.states, staged, self._last_event_offset)

        next_offset = TopicPartition(self.topics.commands, self.partition, batch[-1].offset() + 1)
        try:
            with batch_span(f"{self.topics.commands} process", (m.headers() for m in batch)):
                self.transaction.commit(write, consumer, [next_offset])
        except KafkaException as exc:
            log.error("command_batch_failed", partition=self.partition, error=str(exc.args[0]))
            self._delivery_errors.clear()
            # The batch began where the last commit left the partition: rewind there.
            own = TopicPartition(self.topics.commands, self.partition, batch[0].offset())
            self.snapshots.aborted()
            self.transaction.abort(exc, consumer, [own])
            return
        self.states.merge(staged)
        self.snapshots.committed(
            staged.states.keys(), _event_count(decisions), self._last_event_offset
        )
        for decision in decisions:
            COMMANDS.labels(status=decision.outcome["status"]).inc()
        BATCH_SECONDS.observe(time.perf_counter() - started)

    def _decide(self, message: Message, staged: AggregateStates) -> Decision | None:
        try:
            _, command = self.codec.decode(message.value())
            if command.get("command_id") is None or "expected_version" not in command:
                raise DecodeError("invalid", "not a command record")
        except DecodeError as err:
            log.warning(
                "command_dead_lettered",
                reason=err.reason,
                offset=message.offset(),
                partition=self.partition,
            )
            self._produce(
                self.topics.deadletter,
                None,
                dead_letter(self.codec, message, err, CONSUMER_NAME, self.now()),
            )
            return None
        try:
            decision = decide_command(staged, command, self.now)
            encoded = [self.codec.encode(event["type"], event) for event in decision.events]
        except Exception:  # a bug must reject this one command, not wedge the partition
            log.exception("command_failed", command_id=command["command_id"])
            return internal_error(command, self.now())
        if decision.accepted:
            staged.set(
                command["aggregate_type"], command["aggregate_id"], decision.state, decision.version
            )
        for event, payload in zip(decision.events, encoded, strict=True):
            self._produce(self.topics.events, event["aggregate_id"], payload, decision)
        return decision

    def _produce(
        self,
        topic: str,
        key: str | None,
        value: bytes,
        decision: Decision | None = None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> None:
        def delivered(err: KafkaError | None, msg: Message) -> None:
            if err is not None:
                self._delivery_errors.append(err)
            elif decision is not None:  # an event
                decision.outcome["position"] = f"{msg.partition()}-{msg.offset()}"
                self._last_event_offset = max(self._last_event_offset or 0, msg.offset())

        # Everything a batch writes stays on partition p of each topic: fewer partitions in a
        # transaction means fewer commit markers for the broker to write.
        self.producer.produce(
            topic,
            value=value,
            key=key,
            partition=self.partition,
            on_delivery=delivered,
            headers=headers_out() if headers is None else headers,
        )

    def _flush_events(self, decisions: list[Decision]) -> None:
        """Outcomes carry the events' offsets, so the events must be acknowledged first."""
        if any(d.events for d in decisions) and self.producer.flush(30) > 0:
            raise KafkaException(KafkaError(KafkaError._MSG_TIMED_OUT, "events not delivered"))
        if self._delivery_errors:
            raise KafkaException(self._delivery_errors[0])


def _event_count(decisions: list[Decision]) -> int:
    return sum(len(decision.events) for decision in decisions)


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
