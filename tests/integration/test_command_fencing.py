"""Zombie fencing of the command processor's one transactional producer (KIP-447).

A processor that lost its partitions in a rebalance still holds the group metadata it had
before. Its transaction must fail when it offers the commands offsets with that metadata,
and nothing it wrote may become readable; the same step with the current metadata commits.
"""

from __future__ import annotations

import time

from confluent_kafka import (
    Consumer,
    KafkaError,
    KafkaException,
    TopicPartition,
)

from infra.config.settings import Settings
from streams.command_processor import group_id
from streams.kafka.config import consumer_config
from streams.kafka.reading import read_to_end
from streams.kafka.topics import ensure_topics
from streams.kafka.transactions import TransactionalProducer

# The group coordinator's answers to offsets from a member of an older generation
FENCED = (KafkaError.ILLEGAL_GENERATION, KafkaError.UNKNOWN_MEMBER_ID)


class HeldMetadata:
    """What a zombie offers: the group metadata it held, whatever the group did since."""

    def __init__(self, metadata: object) -> None:
        self.metadata = metadata

    def consumer_group_metadata(self) -> object:
        return self.metadata


def member(settings: Settings) -> Consumer:
    """A member of the processor's group, once it holds an assignment."""
    consumer = Consumer(consumer_config(settings, group_id(settings)))
    consumer.subscribe([settings.topic("commands")])
    deadline = time.monotonic() + 30
    while not consumer.assignment():
        assert time.monotonic() < deadline, "no assignment"
        consumer.poll(0.1)
    return consumer


def committed_events(settings: Settings) -> int:
    """Readable (committed) messages on events partition 0."""
    reader = Consumer(consumer_config(settings, f"{group_id(settings)}.reader"))
    try:
        return sum(1 for _ in read_to_end(reader, settings.topic("events"), 0))
    finally:
        reader.close()


def step(settings: Settings, transactional_id: str, owner: object) -> KafkaError | None:
    """One event and the commands offset of partition 0, committed for `owner`'s metadata;
    the error if that failed (the transaction is then aborted)."""
    transaction = TransactionalProducer(settings, transactional_id)
    transaction.open()
    offsets = [TopicPartition(settings.topic("commands"), 0, 1)]
    try:
        transaction.commit(
            lambda producer: producer.produce(settings.topic("events"), b"e", partition=0),
            owner,  # type: ignore[arg-type]  # only its group metadata is asked for
            offsets,
        )
    except KafkaException as exc:
        transaction.producer.abort_transaction(10)
        error: KafkaError = exc.args[0]
        return error
    return None


def test_a_processor_that_lost_its_partitions_cannot_commit_for_them(settings: Settings) -> None:
    ensure_topics(settings)
    zombie = member(settings)
    held = zombie.consumer_group_metadata()
    zombie.close()  # leaves the group: the next member's assignment is a new generation
    owner = member(settings)
    try:
        error = step(settings, "fencing.zombie", HeldMetadata(held))
        assert error is not None and error.code() in FENCED, error
        assert committed_events(settings) == 0
        assert step(settings, "fencing.owner", owner) is None
        assert committed_events(settings) == 1
        [committed] = owner.committed([TopicPartition(settings.topic("commands"), 0)], 10)
        assert committed.offset == 1
    finally:
        owner.close()
