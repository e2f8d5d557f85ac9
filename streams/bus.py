"""The Python API for services: publish domain events, subscribe to them by pattern.

`user` and `workspace` events are written only by the command processor, their single
writer, and the sagas' by the notifier (sagas.event_owners); services send commands for
those and publish events of their own aggregates.
"""

from __future__ import annotations

import asyncio
import fnmatch
import inspect
import threading
from collections.abc import Awaitable, Callable, Iterator, Sequence
from datetime import datetime
from typing import Any, NamedTuple, TypeVar

import structlog
from confluent_kafka import Consumer, Message

from infra.config.clock import utcnow
from infra.config.settings import Settings
from sagas.event_owners import owner_of
from schemas.codec import AvroCodec, DecodeError, Encoder
from schemas.timestamps import epoch_ms
from schemas.tracking_plan import load_plan
from streams.ids import new_ids
from streams.ingest import Ingestor, IngestResult
from streams.kafka.async_producer import AsyncProducer
from streams.kafka.config import consumer_config, producer_config
from streams.kafka.dead_letters import KafkaDeadLetters
from streams.kafka.polling import poll_batch
from streams.kafka.topics import Topics
from streams.process.gc_pause import paused_gc

log = structlog.get_logger()
Record = dict[str, Any]
# A handler is a plain function, or a coroutine function the subscriber awaits.
Handler = Callable[[Record], None | Awaitable[None]]
H = TypeVar("H", bound=Handler)


class OwnedByCommandSide(ValueError):
    """Events of decided aggregates (and of the sagas) come only from their own processes."""


class Published(NamedTuple):
    event_id: str
    partition: int
    offset: int


class NewEvent(NamedTuple):
    """An event a service publishes; aggregate_version 0 means it does not version its aggregate.

    NamedTuples, as Published: a frozen dataclass costs three times as much to build, which
    shows in a batch of thousands."""

    type: str
    aggregate_id: str
    data: Record
    aggregate_version: int = 0
    actor: str = "service"
    correlation_id: str | None = None
    causation_id: str | None = None
    occurred_at: datetime | None = None
    event_id: str | None = None


class EventBus:
    def __init__(
        self, settings: Settings, *, codec: AvroCodec | None = None, writer: str | None = None
    ) -> None:
        """`writer` is the platform process this bus publishes for (sagas.event_owners), which
        may then write its own types; services leave it out."""
        self.codec = codec or AvroCodec()
        self._writer = writer
        self.topics = Topics.from_settings(settings)
        self._producer = AsyncProducer(producer_config(settings))
        self._settings = settings
        self._ingestor: Ingestor | None = None  # built on first use: it reads the plan file
        self._kinds: dict[str, tuple[str, Encoder]] = {}  # event type -> see _kind

    async def publish(
        self, type: str, aggregate_id: str, data: Record, **envelope: Any
    ) -> Published:
        """Validate against the event's schema and return once Kafka has it durably.

        `envelope` takes the other NewEvent fields (actor, correlation_id, ...).
        """
        [published] = await self.publish_many([NewEvent(type, aggregate_id, data, **envelope)])
        return published

    async def publish_many(self, events: Sequence[NewEvent]) -> list[Published]:
        """Publish a batch: all are checked before any is sent; returns once all are durable.

        Events without a time of their own share the batch's, read from the clock once."""
        now, fresh_ids = epoch_ms(utcnow()), iter(new_ids(2 * len(events)))
        with paused_gc():  # thousands of acyclic records: collections would only slow them
            records = [self._record(event, now, fresh_ids) for event in events]
            payloads = [(r["aggregate_id"], self._kinds[r["type"]][1](r)) for r in records]
        messages = await self._producer.send_many(self.topics.events, payloads)
        return [
            Published(r["event_id"], m.partition(), m.offset())
            for r, m in zip(records, messages, strict=True)
        ]

    def _kind(self, type: str) -> tuple[str, Encoder]:
        """The aggregate type and the encoder of an event type this bus may write."""
        if (known := self._kinds.get(type)) is None:
            if (owner := owner_of(type)) not in (None, self._writer):
                raise OwnedByCommandSide(f"{type} events are written only by {owner}")
            known = (type.split(".", 1)[0], self.codec.encoder(type))
            self._kinds[type] = known
        return known

    def _record(self, event: NewEvent, now: int, fresh_ids: Iterator[str]) -> Record:
        aggregate_type = self._kind(event.type)[0]
        self.codec.validate_data(event.type, event.data)  # the envelope is built here, typed
        return {
            "event_id": event.event_id or next(fresh_ids),
            "type": event.type,
            "aggregate_type": aggregate_type,
            "aggregate_id": event.aggregate_id,
            "aggregate_version": event.aggregate_version,
            "occurred_at": event.occurred_at or now,  # epoch ms, as Avro writes it
            "correlation_id": event.correlation_id or next(fresh_ids),
            "causation_id": event.causation_id,
            "actor": event.actor,
            "data": event.data,
        }

    async def ingest(self, items: Sequence[Any], source: str = "service") -> IngestResult:
        """Track analytics events exactly as `POST /api/v1/ingest/batch` does.

        Items are `{type, user_id?, timestamp, data?, id?}`; returns once Kafka holds the
        accepted events and the refused items (raises LogUnavailable otherwise).
        """
        if self._ingestor is None:
            plan = load_plan(self._settings.analytics_file)
            self._ingestor = Ingestor(self._settings, self._producer, self.codec, plan)
        return await self._ingestor.ingest(items, source)

    def close(self) -> None:
        self._producer.close()


class EventSubscriber:
    """At-least-once delivery of decoded events to handlers chosen by type pattern.

    Offsets are committed after the handlers ran, so a crash replays the last batch:
    handlers must be idempotent (the event_id is stable). Handlers run one at a time, in
    log order, on the thread that calls `run`; a coroutine function's result is awaited
    there, on an event loop `run` keeps for itself, before the next handler starts.
    """

    def __init__(self, settings: Settings, group: str, *, codec: AvroCodec | None = None) -> None:
        self.codec = codec or AvroCodec()
        self.topics = Topics.from_settings(settings)
        self.group = group
        self._handlers: list[tuple[str, Handler]] = []
        self._consumer = Consumer(
            consumer_config(settings, group, **{"enable.auto.offset.store": True})
        )
        self._dead_letters = KafkaDeadLetters(settings, group, self.codec, utcnow)

    def subscribe(self, pattern: str, handler: Handler) -> None:
        """Call `handler` with every event whose type matches `pattern` (fnmatch: `user.*`)."""
        self._handlers.append((pattern, handler))

    def on(self, pattern: str) -> Callable[[H], H]:
        """`subscribe` as a decorator: `@subscriber.on("user.*")` above a sync or async def.
        The function is returned unchanged, so it can still be called (and tested) directly."""

        def register(handler: H) -> H:
            self.subscribe(pattern, handler)
            return handler

        return register

    def run(self, stop: threading.Event) -> None:
        self._consumer.subscribe([self.topics.events])
        loop = asyncio.new_event_loop()  # this thread's own: `run` may be called from any thread
        try:
            while not stop.is_set():
                messages = poll_batch(self._consumer, 500, 0.1)
                for message in messages:
                    self._dispatch(message, loop)
                if messages:
                    self._dead_letters.flush()  # raises rather than commit past a lost one
                    self._consumer.commit(asynchronous=False)
        finally:
            self._consumer.close()
            loop.close()

    def _dispatch(self, message: Message, loop: asyncio.AbstractEventLoop) -> None:
        if message.error() is not None:
            log.warning("consume_error", error=str(message.error()))
            return
        try:
            _, record = self.codec.decode(message.value())
        except DecodeError as err:
            self._dead_letters.send(message, err)
            return
        for pattern, handler in self._handlers:
            if fnmatch.fnmatchcase(record["type"], pattern):
                result = handler(record)
                if inspect.isawaitable(result):  # done before the offset can be committed
                    loop.run_until_complete(result)
