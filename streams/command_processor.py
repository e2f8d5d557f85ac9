"""The command processor: consumes commands and hands each partition's batch to its writer.

Static group membership lets a restarted processor take its partitions back at once,
instead of waiting for the dead member's session to expire.

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
from streams.kafka.config import consumer_config
from streams.kafka.polling import poll_batch
from streams.kafka.topics import Topics
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
        self._pool = ThreadPoolExecutor(max_workers=settings.partitions, thread_name_prefix="txn")
        group = f"{settings.topic_prefix}.command-processor"
        self.consumer = Consumer(
            consumer_config(
                settings,
                group,
                **{
                    "group.instance.id": f"{group}.{settings.instance_id}",
                    "session.timeout.ms": 10000,
                    "heartbeat.interval.ms": 1000,
                },
            )
        )

    def run(self, stop: threading.Event) -> None:
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
        for writer in self.writers.values():
            writer.close()
        self.consumer.close()
        self.watchdog.retire(self._heartbeat)

    def _step(self, messages: list[Message]) -> None:
        """Each partition's transaction waits on broker round trips: run them side by side.

        poll_batch raised already for a fatal error (FENCED_INSTANCE_ID: another member took
        our place); what is left is retried by librdkafka itself."""
        batches: dict[int, list[Message]] = {}
        for message in messages:
            error = message.error()
            if error is not None:
                log.warning("consume_error", error=str(error))
            elif message.partition() in self.writers:  # else revoked since: its owner redoes it
                batches.setdefault(message.partition(), []).append(message)
        if len(batches) == 1:
            [(partition, batch)] = batches.items()
            self.writers[partition].process(batch, self.consumer)
            return
        futures = [
            self._pool.submit(self.writers[partition].process, batch, self.consumer)
            for partition, batch in batches.items()
        ]
        for future in futures:
            future.result()

    def _assigned(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        writers = [
            PartitionWriter(self.settings, self.topics, tp.partition, self.codec, self.now)
            for tp in partitions
        ]
        with self.watchdog.catching_up(f"rebuilding {len(writers)} partitions"):
            for future in [self._pool.submit(writer.open) for writer in writers]:
                future.result()  # fencing zombies and rebuilding state, every partition at once
        self.writers.update((writer.partition, writer) for writer in writers)
        log.info("partitions_assigned", partitions=[tp.partition for tp in partitions])
        self.ready.set()

    def _revoked(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            writer = self.writers.pop(tp.partition, None)
            if writer is not None:
                writer.close()
        log.info("partitions_revoked", partitions=[tp.partition for tp in partitions])


def run(settings: Settings) -> None:
    """Composition root of the command-processor process."""

    def build(_: ExitStack) -> Process:
        processor = CommandProcessor(settings)
        return Process(processor.ready.is_set, processor.run, processor.watchdog)

    serve("command-processor", settings, build, health_port=settings.command_processor_health_port)
