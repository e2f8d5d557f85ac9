"""Publishes checked events to the events topic, once per event id.

Every published event's id is remembered in PostgreSQL (projections.published_events) in
the same transaction that waits for Kafka's acknowledgment, so the same `event_id` sent again
is answered with its first position instead of being written twice, for at least
REMEMBERED_FOR. The same id with another event, or from another publisher, is a 409.
Nothing is answered 2xx before Kafka holds every event of the request.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

import psycopg
import structlog
from psycopg_pool import AsyncConnectionPool

from gateway.event_input import EventInput
from gateway.problems import Problem
from infra.config.clock import utcnow
from projections import published_events as ledger
from schemas.codec import AvroCodec
from streams.kafka.async_producer import AsyncProducer, LogUnavailable

log = structlog.get_logger()
FORGET_EVERY_S = 3600.0  # rows past the window are dropped this often (per gateway process)
Record = dict[str, Any]


@dataclass(frozen=True)
class Publication:
    """Where each event of a request is (`partition-offset` of the events topic), in order."""

    positions: list[tuple[str, str]]  # (event_id, position)
    replayed: bool  # every event had been published before: nothing was written now


class EventPublisher:
    def __init__(
        self, producer: AsyncProducer, codec: AvroCodec, pool: AsyncConnectionPool, topic: str
    ) -> None:
        self.producer, self.codec, self.pool, self.topic = producer, codec, pool, topic
        self._forget_at = 0.0

    async def publish(
        self, events: list[EventInput], publisher: str, correlation_id: str
    ) -> Publication:
        """Problem 409 for an id taken by another event, 503 if Kafka did not take them."""
        await self._forget_old()
        records = [_record(e, publisher, correlation_id) for e in events]
        sent: dict[str, str] = {}
        before: dict[str, ledger.Remembered] = {}
        try:
            async with self.pool.connection() as conn, conn.transaction():
                digests = [(r["event_id"], e.digest) for r, e in zip(records, events, strict=True)]
                claimed = await ledger.claim(conn, publisher, digests)
                before = await ledger.known(conn, [i for i, _ in digests if i not in claimed])
                _refuse_conflicts(digests, claimed, before, publisher)
                sent = await self._send([r for r in records if r["event_id"] in claimed])
                await ledger.record(conn, sent)
        except psycopg.OperationalError:
            if not sent:
                raise  # nothing published: 503 database-unavailable
            # Kafka holds the events, so they are answered as published; only their ids were
            # not remembered, and a retry of this request would publish them again.
            log.warning("published_event_ids_not_remembered", event_ids=list(sent))
        ids = [r["event_id"] for r in records]
        positions = [(i, sent[i] if i in sent else before[i].position) for i in ids]
        return Publication(positions, replayed=not sent)

    async def _send(self, records: list[Record]) -> dict[str, str]:
        if not records:
            return {}
        # event_input checked each `data` against its schema; the envelope is built here
        payloads = [
            (r["aggregate_id"], self.codec.encode(r["type"], r, check=False)) for r in records
        ]
        try:
            messages = await self.producer.send_many(self.topic, payloads)
        except LogUnavailable as exc:
            detail = f"the event log did not take the events: {exc}"
            raise Problem(503, "log-unavailable", detail, headers={"Retry-After": "5"}) from None
        return {
            r["event_id"]: f"{m.partition()}-{m.offset()}"
            for r, m in zip(records, messages, strict=True)
        }

    async def _forget_old(self) -> None:
        if time.monotonic() < self._forget_at:
            return
        self._forget_at = time.monotonic() + FORGET_EVERY_S
        async with self.pool.connection() as conn:
            await ledger.forget_older(conn)


def _record(event: EventInput, publisher: str, correlation_id: str) -> Record:
    """The event's Avro record: the actor is always the token's subject."""
    return {
        "event_id": event.event_id or str(uuid.uuid4()),
        "type": event.type,
        "aggregate_type": event.type.split(".", 1)[0],
        "aggregate_id": event.aggregate_id,
        "aggregate_version": 0,  # services do not version their aggregates (streams.bus)
        "occurred_at": event.occurred_at or utcnow(),
        "correlation_id": correlation_id,
        "causation_id": event.causation_id,
        "actor": publisher,
        "data": event.data,
    }


def _refuse_conflicts(
    digests: list[tuple[str, str]],
    claimed: set[str],
    before: dict[str, ledger.Remembered],
    publisher: str,
) -> None:
    """A repeat is the same event from the same publisher; anything else reusing an id is 409."""
    errors = [
        {"pointer": f"/events/{index}/event_id", "detail": "names another event published before"}
        for index, (event_id, digest) in enumerate(digests)
        if event_id not in claimed
        if (seen := before.get(event_id)) is None
        or (seen.digest, seen.publisher) != (digest, publisher)
    ]
    if errors:
        detail = "an event_id may name one event only; give the new event another id"
        raise Problem(409, "event-id-conflict", detail, errors=errors)
