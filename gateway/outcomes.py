"""Follows the outcomes topic so that `Prefer: wait` requests learn their command's fate.

It starts at the topic's end: a waiter registers before its command is produced, so
every outcome it can be waiting for comes later. Recent outcomes are kept for lookups.

Heal, never wedge: the thread beats its heartbeat every poll (its watchdog answers the
gateway's /healthz), and after a failure, a fatal error or a consumer that stopped receiving
what the broker holds (streams.kafka.progress) it starts over on a fresh consumer, at the
positions it had reached, so no outcome is skipped.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar

import structlog
from confluent_kafka import Consumer, KafkaException, TopicPartition

from infra.config.settings import Settings
from schemas.codec import AvroCodec, DecodeError
from streams.kafka.config import consumer_config
from streams.kafka.polling import poll_batch
from streams.kafka.progress import ProgressCheck, consumed_positions, offset_ranges
from streams.process.watchdog import Watchdog

log = structlog.get_logger()
Outcome = dict[str, Any]
T = TypeVar("T")
RECENT = 10_000
ASK_KAFKA_S = 30.0  # for metadata and watermarks, in slices of a second so a stop is quick


class ConsumerStalled(Exception):
    """The consumer stopped receiving what the broker holds: start over on a fresh one."""


class OutcomeListener:
    def __init__(
        self, settings: Settings, codec: AvroCodec, loop: asyncio.AbstractEventLoop
    ) -> None:
        self.topic = settings.topic("outcomes")
        self.codec, self.loop = codec, loop
        self.ready = threading.Event()
        self._waiters: dict[str, asyncio.Future[Outcome]] = {}
        self._recent: OrderedDict[str, Outcome] = OrderedDict()
        self._stop = threading.Event()
        self._config = consumer_config(settings, f"{settings.topic_prefix}.gateway")
        self._consumer = Consumer(self._config)
        self._positions: dict[int, int] = {}  # partition -> next offset to receive
        self.watchdog = Watchdog(settings.watchdog_s)
        self.watchdog.require("outcomes not followed", self.ready.is_set)
        self._heartbeat = self.watchdog.heartbeat("outcome listener")
        self._progress: ProgressCheck[int] = ProgressCheck(settings.watchdog_s)
        self._thread = threading.Thread(target=self._run, name="outcome-listener", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def expect(self, command_id: str) -> asyncio.Future[Outcome]:
        future: asyncio.Future[Outcome] = self.loop.create_future()
        self._waiters[command_id] = future
        return future

    def forget(self, command_id: str) -> None:
        self._waiters.pop(command_id, None)

    def recent(self, command_id: str) -> Outcome | None:
        return self._recent.get(command_id)

    def _run(self) -> None:
        """Follows the topic until stopped; after a failure it starts over, where it was."""
        try:
            while not self._stop.is_set():
                self._heartbeat.beat()
                try:
                    with self._heartbeat.waiting():  # for Kafka, which may be away
                        self._assign()
                    self._follow()
                except Exception:  # shows in logs, /healthz and /readyz while it retries
                    self.ready.clear()
                    if not self._stop.is_set():
                        log.exception("outcome_listener_failed")
                        self._stop.wait(1.0)
                        self._replace_consumer()
        finally:
            self._consumer.close()
        self.watchdog.retire(self._heartbeat)

    def _follow(self) -> None:
        while not self._stop.is_set():
            self._heartbeat.beat()
            messages = poll_batch(self._consumer, 500, 0.1)
            for message in messages:
                if message.error() is None:
                    self._positions[message.partition()] = message.offset() + 1
                    self._receive(message.value())
            if messages:
                self._progress.advanced()
            elif self._progress.due():
                self._check_progress()

    def _check_progress(self) -> None:
        partitions = sorted(self._positions)
        try:
            ranges = offset_ranges(self._consumer, self.topic, partitions)
        except KafkaException:  # the broker is away: nothing to judge
            self._progress.postpone()
            return
        consumer, positions = self._consumer, self._positions
        self._positions = consumed_positions(consumer, self.topic, partitions, positions)
        if self._progress.stalled(self._positions, ranges):
            log.warning("outcome_listener_stalled", positions=self._positions, ends=ranges)
            raise ConsumerStalled

    def _replace_consumer(self) -> None:
        """A fresh client: whatever state the old one is stuck in goes with it."""
        self._consumer.close()
        self._consumer = Consumer(self._config)

    def _ask(self, question: Callable[[], T]) -> T:
        """`question` asked again until answered, ASK_KAFKA_S at most, or until stopped: a
        stop must not wait out a long request to a Kafka that is away."""
        deadline = time.monotonic() + ASK_KAFKA_S
        while True:
            try:
                return question()
            except KafkaException:
                if self._stop.is_set() or time.monotonic() > deadline:
                    raise

    def _assign(self) -> None:
        """Every partition at the position reached, or at its end the first time."""
        metadata = self._ask(lambda: self._consumer.list_topics(self.topic, timeout=1.0))
        for partition in metadata.topics[self.topic].partitions:
            if partition not in self._positions:
                where = TopicPartition(self.topic, partition)
                _, high = self._ask(partial(self._consumer.get_watermark_offsets, where, 1.0))
                self._positions[partition] = high
        self._consumer.assign(
            [TopicPartition(self.topic, p, offset) for p, offset in self._positions.items()]
        )
        self._progress.advanced()
        self.ready.set()

    def _receive(self, payload: bytes | None) -> None:
        try:
            _, outcome = self.codec.decode(payload)
        except DecodeError:
            return
        if not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self._settle, outcome)

    def _settle(self, outcome: Outcome) -> None:
        command_id = outcome["command_id"]
        self._recent[command_id] = outcome
        if len(self._recent) > RECENT:
            self._recent.popitem(last=False)
        future = self._waiters.pop(command_id, None)
        if future is not None and not future.done():
            future.set_result(outcome)
