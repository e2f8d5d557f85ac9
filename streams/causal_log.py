"""The log as `nexus trace` reads it: every record of the traced topics, as trace entries.

Reads the whole log on every call: acceptable while a trace is an operator's occasional
question and topics are modest; an index by correlation id (a projection) is the way out
when it is not. The read is bounded all the same: it goes from each partition's start to
its high watermark as taken when the call began, so records written meanwhile never keep
it going, and it gives up after `timeout_s`. One consumer, assigned every partition (no
group, nothing committed), fetches in batches under read_committed like every consumer
here, so aborted transactions never show. A record that does not decode is counted and
skipped (its consumers dead-lettered it: the dead letter shows); a dead letter comes with
the record it holds, when that decodes (projections.causal_chain links them).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaException, Message, TopicPartition

from infra.config.settings import Settings
from projections.causal_chain import DEAD_LETTER_SCHEMA, Entry, Position, Record, entry
from schemas.codec import AvroCodec, DecodeError
from streams.kafka.config import consumer_config
from streams.kafka.polling import poll_batch
from streams.kafka.topics import LOGICAL_TOPICS
from streams.kafka.tracing import writer_of

# Tracked and refused analytics items carry no causation, and snapshots are a cache of
# events already read: the rest of the platform's topics hold a request's records.
UNTRACED = frozenset({"analytics", "analytics-rejected", "snapshots"})
TRACED_TOPICS = tuple(name for name in LOGICAL_TOPICS if name not in UNTRACED)
BATCH = 1000
POLL_S = 0.1
METADATA_TIMEOUT_S = 5.0  # per metadata or watermark request, within the whole bound
Ends = dict[tuple[str, int], tuple[int, int]]  # (topic, partition): (low, high) watermarks


class LogUnreachable(RuntimeError):
    """Kafka did not answer: the log cannot be read now."""


class LogReadTimedOut(TimeoutError):
    """The log was not read to its end within the time allowed."""


@dataclass(frozen=True)
class LogRead:
    entries: tuple[Entry, ...]
    read: int  # records read, decodable or not
    undecodable: int
    topics: tuple[str, ...]  # the traced topics that exist


def read_log(settings: Settings, timeout_s: float) -> LogRead:
    """Every traced record up to the ends at the start of the call, within `timeout_s`.
    Raises LogUnreachable or LogReadTimedOut."""
    deadline = time.monotonic() + timeout_s
    group = f"{settings.topic_prefix}.trace.{uuid.uuid4()}"  # never joined: partitions assigned
    consumer = Consumer(consumer_config(settings, group))
    try:
        ends = _ends(consumer, [settings.topic(name) for name in TRACED_TOPICS], deadline)
        return _read(consumer, AvroCodec(), ends, deadline)
    except KafkaException as exc:
        raise LogUnreachable(str(exc.args[0])) from None
    finally:
        consumer.close()


def _ends(consumer: Consumer, names: list[str], deadline: float) -> Ends:
    """The watermarks of every partition of the topics in `names` that exist."""
    metadata = consumer.list_topics(timeout=_left(deadline)).topics
    ends: Ends = {}
    for name in names:
        meta = metadata.get(name)
        if meta is None or meta.error is not None:
            continue  # not created yet: nothing to read
        for partition in meta.partitions:
            marks = consumer.get_watermark_offsets(TopicPartition(name, partition), _left(deadline))
            if marks is None:
                raise LogUnreachable(f"no watermarks for {name} [{partition}]")
            ends[(name, partition)] = marks
    return ends


def _read(consumer: Consumer, codec: AvroCodec, ends: Ends, deadline: float) -> LogRead:
    pending = {key: high for key, (low, high) in ends.items() if high > low}
    consumer.assign([TopicPartition(t, p, ends[(t, p)][0]) for t, p in pending])
    entries: list[Entry] = []
    read = undecodable = 0
    while pending:
        if time.monotonic() > deadline:
            raise LogReadTimedOut(f"{len(pending)} partitions not read to their end in time")
        for message in poll_batch(consumer, BATCH, POLL_S):
            if message.error() is not None:
                continue
            topic, partition, offset = _where(message)
            if offset >= pending.get((topic, partition), -1):
                continue  # past the end taken at the start, or of a partition already done
            read += 1
            try:
                found = _entry(codec, message)
            except (DecodeError, KeyError, TypeError):  # or lacks the envelope a trace links by
                undecodable += 1
                continue
            if found is not None:
                entries.append(found)
        _finish(consumer, pending)
    return LogRead(tuple(entries), read, undecodable, tuple(sorted({t for t, _ in ends})))


def _finish(consumer: Consumer, pending: dict[tuple[str, int], int]) -> None:
    """Drop (and pause) the partitions read to their end. By position, not by the last
    offset seen: under read_committed the last offsets may be transaction markers."""
    positions = consumer.position([TopicPartition(t, p) for t, p in pending])
    done = [tp for tp in positions if tp.offset >= pending[(tp.topic, tp.partition)]]
    if done:
        consumer.pause(done)
    for tp in done:
        del pending[(tp.topic, tp.partition)]


def _entry(codec: AvroCodec, message: Message) -> Entry | None:
    schema, record = codec.decode(message.value())
    held = _held(codec, record) if schema.name == DEAD_LETTER_SCHEMA else None
    return entry(schema.name, record, _where(message), writer_of(message.headers()), held)


def _where(message: Message) -> Position:
    return (message.topic() or "", message.partition() or 0, message.offset() or 0)


def _held(codec: AvroCodec, letter: Record) -> tuple[str, Record] | None:
    """The record a dead letter holds, when its bytes decode (a message refused as invalid)."""
    try:
        schema, record = codec.decode(letter["payload"])
    except DecodeError:
        return None
    return schema.name, record


def _left(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise LogReadTimedOut("the log's metadata was not read in time")
    return min(left, METADATA_TIMEOUT_S)
