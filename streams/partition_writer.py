"""One commands partition's single writer: its transactional producer and aggregate states.

Each partition has its own transactional id, so a new owner's init_transactions fences a
zombie and aborts whatever it left open. A batch of commands becomes one transaction:
events, outcomes, dead letters and the commands offset commit or vanish together.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime

import structlog
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from prometheus_client import Counter, Histogram

from aggregates.handling import AggregateStates, Decision, decide_command, internal_error
from infra.config.settings import Settings
from schemas.codec import AvroCodec, DecodeError
from streams.kafka.config import consumer_config
from streams.kafka.dead_letters import dead_letter
from streams.kafka.reading import read_to_end
from streams.kafka.topics import Topics
from streams.kafka.transactions import TransactionalProducer

log = structlog.get_logger()
COMMANDS = Counter("nexus_commands_total", "Commands decided", ["status"])
BATCH_SECONDS = Histogram("nexus_command_batch_seconds", "One partition batch transaction")
REBUILD_EVENTS = Counter("nexus_rebuild_events_total", "Events folded while rebuilding state")
CONSUMER_NAME = "command-processor"


class PartitionWriter:
    def __init__(
        self,
        settings: Settings,
        topics: Topics,
        partition: int,
        codec: AvroCodec,
        now: Callable[[], datetime],
    ) -> None:
        self.settings, self.topics, self.partition = settings, topics, partition
        self.codec, self.now = codec, now
        self.states = AggregateStates()
        self._delivery_errors: list[KafkaError] = []
        transactional_id = f"{settings.topic_prefix}.command-processor.{partition}"
        self.transaction = TransactionalProducer(settings, transactional_id)
        self.producer = self.transaction.producer

    def open(self) -> None:
        self.transaction.open()
        self.states = rebuild_states(self.settings, self.topics.events, self.partition, self.codec)

    def close(self) -> None:
        self.producer.flush(10)

    def process(self, batch: list[Message], consumer: Consumer) -> None:
        started = time.perf_counter()
        staged = self.states.overlay()
        decisions: list[Decision] = []

        def write(_: Producer) -> None:
            self._delivery_errors.clear()
            decisions.extend(d for m in batch if (d := self._decide(m, staged)) is not None)
            self._flush_events(decisions)
            for decision in decisions:
                outcome = self.codec.encode("command.outcome", decision.outcome)
                self._produce(self.topics.outcomes, decision.command["command_id"], outcome)

        next_offset = TopicPartition(self.topics.commands, self.partition, batch[-1].offset() + 1)
        try:
            self.transaction.commit(write, consumer, [next_offset])
        except KafkaException as exc:
            log.error("command_batch_failed", partition=self.partition, error=str(exc.args[0]))
            self._delivery_errors.clear()
            own = TopicPartition(self.topics.commands, self.partition)
            self.transaction.abort(exc, consumer, [own])
            return
        self.states.merge(staged)
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
        self, topic: str, key: str | None, value: bytes, decision: Decision | None = None
    ) -> None:
        def delivered(err: KafkaError | None, msg: Message) -> None:
            if err is not None:
                self._delivery_errors.append(err)
            elif decision is not None:
                decision.outcome["position"] = f"{msg.partition()}-{msg.offset()}"

        # Everything a batch writes stays on partition p of each topic: fewer partitions in a
        # transaction means fewer commit markers for the broker to write.
        self.producer.produce(
            topic, value=value, key=key, partition=self.partition, on_delivery=delivered
        )

    def _flush_events(self, decisions: list[Decision]) -> None:
        """Outcomes carry the events' offsets, so the events must be acknowledged first."""
        if any(d.events for d in decisions) and self.producer.flush(30) > 0:
            raise KafkaException(KafkaError(KafkaError._MSG_TIMED_OUT, "events not delivered"))
        if self._delivery_errors:
            raise KafkaException(self._delivery_errors[0])


def rebuild_states(
    settings: Settings, topic: str, partition: int, codec: AvroCodec
) -> AggregateStates:
    """Fold the committed events of one partition, from offset 0 to its end."""
    states = AggregateStates()
    group = f"{settings.topic_prefix}.rebuild"
    reader = Consumer(consumer_config(settings, group, **{"enable.partition.eof": False}))
    try:
        for message in read_to_end(reader, topic, partition):
            _fold(states, codec, message)
    finally:
        reader.close()
    log.info("partition_rebuilt", partition=partition, aggregates=len(states.states))
    return states


def _fold(states: AggregateStates, codec: AvroCodec, message: Message) -> None:
    try:
        _, record = codec.decode(message.value())
    except DecodeError:
        return  # the projector dead-letters foreign events; state is built from ours
    states.apply(record)
    REBUILD_EVENTS.inc()
