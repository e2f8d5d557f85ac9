"""One step of the command processor: every polled partition's batch in one transaction.

The process has one transactional producer (KIP-447; its lanes take turns, with one
transaction open at a time). Its transaction commits the batches' command offsets with the
consumer's group metadata, so a processor that lost a partition in a rebalance is fenced by
the group coordinator: its offsets are refused (stale generation or member id) and its
whole transaction aborts, events included.

Whatever a new owner rebuilds state from (events, snapshots) is acknowledged before a
step's offsets are offered. So once a zombie's offsets were accepted, it has none of that
left to append: a new owner, reading each partition up to the end it has after the
rebalance, waits for that transaction (committed or aborted) before it rebuilds state and
before its committed offsets are stable. Outcomes and dead letters need no such flush;
commit_transaction delivers them while the offsets are sent, a few round trips sooner.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import structlog
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from prometheus_client import Histogram

from streams.kafka.tracing import batch_span
from streams.kafka.transactions import TIMEOUT_S, TransactionalProducer
from streams.partition_writer import PartitionBatch, PartitionWriter

log = structlog.get_logger()
BATCH_SECONDS = Histogram("nexus_command_batch_seconds", "One step's transaction")
Batches = Sequence[tuple[PartitionWriter, PartitionBatch]]


def process_step(transaction: TransactionalProducer, consumer: Consumer, batches: Batches) -> bool:
    """Decide and commit `batches`; on a failure abort and rewind them to be taken again.
    Whether it committed. A fatal error raises."""
    started = time.perf_counter()
    offsets = [batch.next_offset for _, batch in batches]
    topic = batches[0][1].topic
    try:
        with batch_span(f"{topic} process", (m.headers() for _, b in batches for m in b.messages)):
            transaction.commit(lambda producer: _write(producer, batches), consumer, offsets)
    except KafkaException as exc:
        partitions = [batch.partition for _, batch in batches]
        log.error("command_batch_failed", partitions=partitions, error=str(exc.args[0]))
        for writer, _ in batches:
            writer.aborted()
        transaction.abort(exc, consumer, [batch.start for _, batch in batches])
        # A failed step usually follows a broker outage, which can leave the process's one
        # producer wedged for good: start afresh, as a rebalance's new owner would.
        transaction.renew()
        return False
    for writer, batch in batches:
        writer.committed(batch)
    BATCH_SECONDS.observe(time.perf_counter() - started)
    return True


def _write(producer: Producer, batches: Batches) -> None:
    for writer, batch in batches:
        writer.decide(batch, producer)
    if any(batch.event_count for _, batch in batches):
        _flush(producer)  # the outcomes name the events' offsets
    snapshots = [writer.conclude(batch, producer) for writer, batch in batches]
    if any(snapshots):
        _flush(producer)  # before the offsets: see the module docstring


def _flush(producer: Producer) -> None:
    if producer.flush(TIMEOUT_S) > 0:
        raise KafkaException(KafkaError(KafkaError._MSG_TIMED_OUT, "not delivered"))
