"""Follows the outcomes topic so that `Prefer: wait` requests learn their command's fate.

It starts at the topic's end: a waiter registers before its command is produced, so
every outcome it can be waiting for comes later. Recent outcomes are kept for lookups.
"""

from __future__ import annotations

import asyncio
import threading
from collections import OrderedDict
from typing import Any

import structlog
from confluent_kafka import Consumer, TopicPartition

from infra.config.settings import Settings
from schemas.codec import AvroCodec, DecodeError
from streams.kafka.config import consumer_config
from streams.kafka.polling import poll_batch

log = structlog.get_logger()
Outcome = dict[str, Any]
RECENT = 10_000


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
        self._consumer = Consumer(consumer_config(settings, f"{settings.topic_prefix}.gateway"))
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
        """Follows the topic until stopped; after a failure it starts again at the end."""
        try:
            while not self._stop.is_set():
                try:
                    self._assign_at_end()
                    while not self._stop.is_set():
                        for message in poll_batch(self._consumer, 500, 0.1):
                            if message.error() is None:
                                self._receive(message.value())
                except Exception:  # shows in logs and /readyz while it retries
                    self.ready.clear()
                    if not self._stop.is_set():
                        log.exception("outcome_listener_failed")
                        self._stop.wait(1.0)
        finally:
            self._consumer.close()

    def _assign_at_end(self) -> None:
        metadata = self._consumer.list_topics(self.topic, timeout=30).topics[self.topic]
        partitions = []
        for partition in metadata.partitions:
            _, high = self._consumer.get_watermark_offsets(
                TopicPartition(self.topic, partition), 30
            )
            partitions.append(TopicPartition(self.topic, partition, high))
        self._consumer.assign(partitions)
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
