"""Sends a command to Kafka and, when asked to, waits for its outcome."""

from __future__ import annotations

import asyncio
import re
from typing import Any

from gateway.outcomes import Outcome, OutcomeListener
from gateway.problems import Problem
from infra.config.clock import utcnow
from schemas.codec import AvroCodec
from streams.ids import new_id
from streams.kafka.async_producer import AsyncProducer, LogUnavailable

MAX_WAIT_SECONDS = 30.0
_WAIT = re.compile(r"(?:^|[,;\s])wait\s*=\s*(\d+(?:\.\d+)?)")
# ASCII digits, at most 18 (below 2**63): int() cannot fail, and the version fits an Avro long.
_ETAG = re.compile(r'[ \t]*"([0-9]{1,18})"[ \t]*')
# Used with fullmatch: `$` would also match before a trailing newline.
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}")


class CommandDispatcher:
    def __init__(
        self, producer: AsyncProducer, codec: AvroCodec, listener: OutcomeListener, topic: str
    ) -> None:
        self.producer, self.codec, self.listener, self.topic = producer, codec, listener, topic

    async def dispatch(self, record: dict[str, Any], wait: float | None) -> Outcome | None:
        """None when not waiting (or the wait ran out); the command is durable either way."""
        command_id = record["command_id"]
        future = self.listener.expect(command_id) if wait else None
        # from_json already checked the data against this schema; the envelope is built here.
        # The encoder is compiled once per command (fastavro where it cannot be).
        payload = self.codec.encoder(record["type"])(record)
        try:
            await self.producer.send(self.topic, payload, record["aggregate_id"])
        except BaseException as exc:
            self.listener.forget(command_id)
            if not isinstance(exc, LogUnavailable):
                raise
            raise Problem(
                503,
                "log-unavailable",
                f"the event log did not take the command: {exc}",
                headers={"Retry-After": "5"},
            ) from None
        if future is None:
            return None
        try:
            return await asyncio.wait_for(future, wait)
        except TimeoutError:
            self.listener.forget(command_id)
            return None


def command_record(
    command: str,
    aggregate_type: str,
    aggregate_id: str,
    data: dict[str, Any],
    *,
    actor: str,
    actor_scopes: frozenset[str],
    expected_version: int | None,
    correlation_id: str | None,
) -> dict[str, Any]:
    """The command as its Avro record; ids and time are given here, at the edge."""
    return {
        "command_id": new_id(),
        "type": command,
        "aggregate_type": aggregate_type,
        "aggregate_id": aggregate_id,
        "expected_version": expected_version,
        "issued_at": utcnow(),
        "correlation_id": correlation_id or new_id(),
        "actor": actor,
        "actor_scopes": sorted(actor_scopes),
        "data": data,
    }


def requested_wait(prefer: str | None) -> float | None:
    """Seconds from `Prefer: wait=N` (RFC 7240), capped; None when not asked."""
    match = _WAIT.search(prefer or "")
    return min(float(match.group(1)), MAX_WAIT_SECONDS) if match else None


def expected_version(if_match: str | None) -> int | None:
    if if_match is None or if_match.strip() == "*":
        return None
    match = _ETAG.fullmatch(if_match)
    if match is None:
        detail = 'If-Match must be an ETag of at most 18 digits, such as "3"'
        raise Problem(400, "invalid-if-match", detail)
    return int(match.group(1))


def checked_id(value: Any, pointer: str) -> str:
    if not isinstance(value, str) or not _ID.fullmatch(value):
        raise Problem(
            422,
            "invalid-id",
            "ids are 1-128 characters of letters, digits, _ . : -",
            errors=[{"pointer": pointer, "detail": "is not a valid id"}],
        )
    return value
