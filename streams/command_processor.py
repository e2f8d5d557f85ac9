"""The command processor: consumes commands, and commits each poll's batches in one
transaction of the process's transactional producer (streams/command_step.py), whose two
lanes take turns so that a step need not wait out the previous one's commit markers.

Static group membership lets a restarted processor take its partitions back at once,
instead of waiting for the dead member's session to expire. The static member's name is
also the transactional id (of each lane): a restarted processor fences its previous
incarnation and aborts whatever transaction it left open. Another member that takes its
partitions over is fenced from it by the group metadata instead (KIP-447), and waits out
such a transaction as it reads the partitions (streams/partition_takeover.py).

Heal or die: a fatal error (this static member fenced, a fenced or failed transactional
producer) ends `run` with KafkaException, leaving its clients unflushed and unclosed, and
`serve` ends the process non-zero for its supervisor to start a fresh one. Its watchdog
shows the poll loop's heartbeat, not ready while it holds no partition or rebuilds state.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from datetime import datetime

import structlog
from confluent_kafka import Consumer, Message, TopicPartition

from infra.config.clock import utcnow
from infra.config.settings import Settings
from schemas.codec import AvroCodec
from streams.command_step import process_step
from streams.kafka.config import consumer_config
from streams.kafka.polling import poll_batch
from streams.kafka.topics import Topics
from streams.kafka.transactions import TransactionalProducer
from streams.partition_writer import PartitionWriter
from streams.process.serve import Process, serve, watchdog_for
from streams.process.watchdog import Watchdog

log = structlog.get_logger()


class CommandProcessor:
    def __init__(
        self,
        settings: Settings,
        *,
        codec: AvroCodec | None = None,
        now: Callable[[], datetime] = utcnow,
        watchdog: Watchdog | None = None,
    ) -> None:
        self.settings, self.codec, self.now = settings, codec or AvroCodec(), now
        self.topics = Topics.from_settings(settings)
        self.writers: dict[int, PartitionWriter] = {}
        self.ready = threading.Event()  # set once partitions were first assigned
        self.watchdog = watchdog or watchdog_for(settings)
        self.watchdog.require("no partitions assigned", lambda: bool(self.writers))
        self._heartbeat = self.watchdog.heartbeat("command poll loop")
        self._pool = ThreadPoolExecutor(settings.partitions, thread_name_prefix="takeover")
        self.transaction = transactions(settings)
        self.consumer = Consumer(
            consumer_config(
                settings,
                group_id(settings),
                **{
                    "group.instance.id": member_name(settings),
                    "session.timeout.ms": 10000,
                    "heartbeat.interval.ms": 1000,
                },
            )
        )

    def run(self, stop: threading.Event) -> None:
        self.transaction.open()  # fences our previous incarnation, aborts its transaction
        self.consumer.subscribe(
            [self.topics.commands],
            on_assign=self._assigned,
            on_revoke=self._revoked,
            on_lost=self._revoked,
        )
        try:
            while not stop.is_set():
                self._heartbeat.beat()
                self._step(poll_batch(self.consumer, 500, 0.1))
        except BaseException:
            # Dying: a transaction stuck on the broker must not hold the process up.
            self._pool.shutdown(wait=False, cancel_futures=True)
            raise
        self._pool.shutdown()
        self.consumer.close()
        self.watchdog.retire(self._heartbeat)

    def _step(self, messages: list[Message]) -> None:
        """poll_batch raised already for a fatal error (FENCED_INSTANCE_ID: another member
        took our place); what is left is retried by librdkafka itself."""
        batches: dict[int, list[Message]] = {}
        for message in messages:
            error = message.error()
            if error is not None:
                log.warning("consume_error", error=str(error))
            elif message.partition() in self.writers:  # else revoked since: its owner redoes it
                batches.setdefault(message.partition(), []).append(message)
        if batches:
            staged = [(self.writers[p], self.writers[p].begin(b)) for p, b in batches.items()]
            process_step(self.transaction, self.consumer, staged)

    def _assigned(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        writers = [
            PartitionWriter(self.settings, self.topics, tp.partition, self.codec, self.now)
            for tp in partitions
        ]
        with self.watchdog.catching_up(f"rebuilding {len(writers)} partitions"):
            for future in [self._pool.submit(writer.open) for writer in writers]:
                future.result()  # rebuilding state, every partition at once
        self.writers.update((writer.partition, writer) for writer in writers)
        log.info("partitions_assigned", partitions=[tp.partition for tp in partitions])
        self.ready.set()

    def _revoked(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            self.writers.pop(tp.partition, None)
        log.info("partitions_revoked", partitions=[tp.partition for tp in partitions])


def group_id(settings: Settings) -> str:
    return f"{settings.topic_prefix}.command-processor"


def member_name(settings: Settings) -> str:
    """This instance's static group member id, and its transactional id."""
    return f"{group_id(settings)}.{settings.instance_id}"


def transactions(settings: Settings) -> TransactionalProducer:
    """This instance's transactional producer: opening it fences every lane's previous
    incarnation. Two lanes: a step's transaction runs while the previous one's markers are
    still being written (streams/kafka/transactions.py)."""
    return TransactionalProducer(settings, member_name(settings), lanes=2)


def run(settings: Settings) -> None:
    """Composition root of the command-processor process."""

    def build(_: ExitStack) -> Process:
        processor = CommandProcessor(settings)
        return Process(processor.ready.is_set, processor.run, processor.watchdog)

    serve("command-processor", settings, build, health_port=settings.command_processor_health_port)
