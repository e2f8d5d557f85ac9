"""An asyncio face on confluent-kafka's Producer: `await send(...)` returns once Kafka acked.

A background thread serves delivery callbacks; each resolves its future on the event loop.
The producer renews itself after a delivery timed out (see renewing.py).
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from itertools import count
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message
from opentelemetry.trace import SpanKind

from streams.kafka.renewing import RenewingProducer
from streams.kafka.tracing import headers_out, recording, tracer


class LogUnavailable(Exception):
    """Kafka did not durably accept the message; nothing may be acknowledged to the caller."""


class AsyncProducer:
    def __init__(self, config: dict[str, Any]) -> None:
        self._producer = RenewingProducer(config)
        self._stop = threading.Event()
        self._inboxes: dict[asyncio.AbstractEventLoop, _Inbox] = {}
        self._thread = threading.Thread(target=self._serve, name="kafka-delivery", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            self._producer.poll(0.05)

    async def send(self, topic: str, value: bytes, key: str | bytes | None = None) -> Message:
        if not recording():
            return await self._send(topic, value, key)
        with tracer.start_as_current_span(f"{topic} publish", kind=SpanKind.PRODUCER):
            return await self._send(topic, value, key)

    async def _send(self, topic: str, value: bytes, key: str | bytes | None) -> Message:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Message] = loop.create_future()
        if (inbox := self._inboxes.get(loop)) is None:
            inbox = self._inboxes.setdefault(loop, _Inbox(loop))

        def delivered(err: KafkaError | None, msg: Message) -> None:
            inbox.put(future, err, msg)

        try:
            self._producer.produce(topic, value, key, delivered, headers_out())
        except BufferError as exc:
            raise LogUnavailable("producer queue is full") from exc
        except KafkaException as exc:
            raise LogUnavailable(str(exc.args[0])) from exc
        return await future

    async def send_many(
        self, topic: str, messages: list[tuple[str | bytes | None, bytes]]
    ) -> list[Message]:
        """Send a batch; one future for all of it keeps per-message overhead low."""
        if not recording():
            return await self._send_many(topic, messages, headers_out())
        with tracer.start_as_current_span(f"{topic} publish", kind=SpanKind.PRODUCER) as span:
            span.set_attribute("messaging.batch.message_count", len(messages))
            return await self._send_many(topic, messages, headers_out())

    async def _send_many(
        self,
        topic: str,
        messages: list[tuple[str | bytes | None, bytes]],
        headers: list[tuple[str, bytes]],
    ) -> list[Message]:
        if not messages:  # no delivery report would ever settle the future
            return []
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[Message]] = loop.create_future()
        batch = _Batch(loop, future, len(messages))
        sent = 0
        while True:
            sent = self._producer.produce_many(topic, messages, sent, batch.delivered, headers)
            if sent == len(messages):
                return await future
            await asyncio.sleep(0.005)  # backpressure: the delivery thread drains the queue

    def reachable(self, timeout: float = 2.0) -> bool:
        """True when the cluster answers a metadata request."""
        try:
            self._producer.list_topics(timeout)
        except Exception:  # any failure to answer means not reachable
            return False
        return True

    def close(self, timeout: float = 10.0) -> None:
        self._producer.flush(timeout)
        self._stop.set()
        self._thread.join(timeout)


def _settle(future: asyncio.Future[Message], err: KafkaError | None, msg: Message) -> None:
    if future.done():
        return
    if err is not None:
        future.set_exception(LogUnavailable(str(err)))
    else:
        future.set_result(msg)


class _Inbox:
    """Delivery reports on their way to one event loop, which settles them in one call per
    wake-up: one `call_soon_threadsafe` (a write to the loop's wake-up pipe, and the loop's
    read of it) per report cost a tenth of a gateway command's CPU. `put` runs on whichever
    thread serves the reports; deque appends and pops are atomic under the GIL."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.reports: deque[tuple[asyncio.Future[Message], KafkaError | None, Message]] = deque()
        self.woken = False  # a `settle_all` is scheduled and has not started yet

    def put(self, future: asyncio.Future[Message], err: KafkaError | None, msg: Message) -> None:
        self.reports.append((future, err, msg))
        if not self.woken:
            self.woken = True
            self.loop.call_soon_threadsafe(self.settle_all)

    def settle_all(self) -> None:
        # Cleared first: a report put while these settle schedules another call.
        self.woken = False
        while self.reports:
            _settle(*self.reports.popleft())


class _Batch:
    """Collects delivery reports; settles its future once every message has one.

    Reports may arrive on more than one thread (a flush beside the delivery thread), so the
    count is an itertools.count, whose `next` the GIL makes atomic."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, future: asyncio.Future[list[Message]], size: int
    ) -> None:
        self.loop, self.future, self.size = loop, future, size
        self.results: list[Message | None] = [None] * size
        self.reported = count(1)
        self.errors: list[KafkaError] = []

    def delivered(self, index: int, err: KafkaError | None, msg: Message) -> None:
        self.results[index] = msg
        if err is not None:
            self.errors.append(err)
        if next(self.reported) == self.size:
            self.loop.call_soon_threadsafe(self._settle)

    def _settle(self) -> None:
        if self.future.done():
            return
        if self.errors:
            self.future.set_exception(LogUnavailable(str(self.errors[0])))
        else:
            self.future.set_result([m for m in self.results if m is not None])
