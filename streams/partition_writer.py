"""One commands partition's single writer: its aggregate states and snapshots.

The writer holds no producer of its own: a step of the command processor (command_step.py)
writes every partition's batch into the process's one transaction. A batch's events,
outcomes, dead letters and, now and then, a snapshot of the partition's aggregates
(streams/snapshots) commit or vanish with that transaction. Its states change only once
the transaction committed; until then the batch decides on a staged overlay.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import structlog
from confluent_kafka import KafkaError, KafkaException, Message, Producer, TopicPartition
from prometheus_client import Counter

from aggregates.handling import AggregateStates, Decision, decide_command, internal_error
from infra.config.settings import Settings
from schemas.codec import AvroCodec, DecodeError
from streams.kafka.dead_letters import dead_letter
from streams.kafka.topics import Topics
from streams.kafka.tracing import headers_out, record_span
from streams.partition_takeover import rebuild_states
from streams.snapshots.writer import Resume, SnapshotPolicy, SnapshotWriter

log = structlog.get_logger()
COMMANDS = Counter("nexus_commands_total", "Commands decided", ["status"])
NO_SNAPSHOT = Resume(0, 0, frozenset(), None, None)
CONSUMER_NAME = "command-processor"
Headers = list[tuple[str, bytes]]


@dataclass
class PartitionBatch:
    """One partition's commands in a step, and what deciding them staged so far."""

    topic: str
    partition: int
    messages: list[Message]
    staged: AggregateStates
    decisions: list[tuple[Decision, Headers]] = field(default_factory=list)
    errors: list[KafkaError] = field(default_factory=list)
    last_event_offset: int | None = None

    @property
    def next_offset(self) -> TopicPartition:
        """The commands offset to commit with the batch."""
        return TopicPartition(self.topic, self.partition, self.messages[-1].offset() + 1)

    @property
    def start(self) -> TopicPartition:
        """Where the last commit left the partition: the rewind after an abort."""
        return TopicPartition(self.topic, self.partition, self.messages[0].offset())

    @property
    def event_count(self) -> int:
        return sum(len(decision.events) for decision, _ in self.decisions)


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

    def open(self) -> None:
        """Rebuild the partition's states from its snapshot and events."""
        self.states, resume = rebuild_states(
            self.settings, self.topics, self.partition, self.codec, self.policy
        )
        self.snapshots = self._snapshot_writer(resume)

    def _snapshot_writer(self, resume: Resume) -> SnapshotWriter:
        topic = self.topics.snapshots
        return SnapshotWriter(self.policy, self.codec, topic, self.partition, resume, self.now)

    def begin(self, messages: list[Message]) -> PartitionBatch:
        topic = self.topics.commands
        return PartitionBatch(topic, self.partition, messages, self.states.overlay())

    def decide(self, batch: PartitionBatch, producer: Producer) -> None:
        """Decide every command of `batch` and produce its events into the transaction."""
        for message in batch.messages:
            with record_span("decide command", message.headers()):
                if (decision := self._decide(batch, message, producer)) is not None:
                    batch.decisions.append((decision, headers_out()))

    def conclude(self, batch: PartitionBatch, producer: Producer) -> bool:
        """Once the events are acknowledged (outcomes carry their offsets): the outcomes,
        and the partition's snapshot when one is due. Whether a snapshot was due."""
        if batch.errors:
            raise KafkaException(batch.errors[0])
        for decision, headers in batch.decisions:
            outcome = self.codec.encode("command.outcome", decision.outcome)
            key = decision.command["command_id"]
            self._produce(producer, batch, self.topics.outcomes, key, outcome, None, headers)
        if not self.snapshots.due(batch.event_count):
            return False
        self.snapshots.write(producer, self.states, batch.staged, batch.last_event_offset)
        return True

    def committed(self, batch: PartitionBatch) -> None:
        self.states.merge(batch.staged)
        self.snapshots.committed(
            batch.staged.states.keys(), batch.event_count, batch.last_event_offset
        )
        for decision, _ in batch.decisions:
            COMMANDS.labels(status=decision.outcome["status"]).inc()

    def aborted(self) -> None:
        self.snapshots.aborted()

    def _decide(
        self, batch: PartitionBatch, message: Message, producer: Producer
    ) -> Decision | None:
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
            letter = dead_letter(self.codec, message, err, CONSUMER_NAME, self.now())
            self._produce(producer, batch, self.topics.deadletter, None, letter)
            return None
        try:
            decision = decide_command(batch.staged, command, self.now)
            encoded = [self.codec.encode(event["type"], event) for event in decision.events]
        except Exception:  # a bug must reject this one command, not wedge the partition
            log.exception("command_failed", command_id=command["command_id"])
            return internal_error(command, self.now())
        if decision.accepted:
            batch.staged.set(
                command["aggregate_type"], command["aggregate_id"], decision.state, decision.version
            )
        for event, payload in zip(decision.events, encoded, strict=True):
            key = event["aggregate_id"]
            self._produce(producer, batch, self.topics.events, key, payload, decision)
        return decision

    def _produce(
        self,
        producer: Producer,
        batch: PartitionBatch,
        topic: str,
        key: str | None,
        value: bytes,
        decision: Decision | None = None,
        headers: Headers | None = None,
    ) -> None:
        def delivered(err: KafkaError | None, msg: Message) -> None:
            if err is not None:
                batch.errors.append(err)
            elif decision is not None:  # an event
                decision.outcome["position"] = f"{msg.partition()}-{msg.offset()}"
                batch.last_event_offset = max(batch.last_event_offset or 0, msg.offset())

        # Everything a batch writes stays on partition p of each topic: fewer partitions in a
        # transaction means fewer commit markers for the broker to write.
        producer.produce(
            topic,
            value=value,
            key=key,
            partition=self.partition,
            on_delivery=delivered,
            headers=headers_out() if headers is None else headers,
        )
