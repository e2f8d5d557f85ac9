"""Analytics ingestion: `POST /api/v1/ingest/event` (one JSON object) and `/batch`.

An event's `user_id` defaults to the sender, and naming another user needs `analytics:ingest`
(servers that ingest for many users); without it, such an event is refused like any invalid one.

A batch is a JSON array, or NDJSON (`application/x-ndjson`, one event per line, blank lines
skipped), of at most MAX_BATCH_EVENTS events and `ingest_max_body_bytes`. Each event is
checked on its own; the answer comes once Kafka has acknowledged both the accepted events
and the refused ones (on analytics-rejected), so it is never a 2xx, nor a 422, for anything
that is not durable. Error pointers point into the request body: `/3/data/page` in a batch.
`event_ids` (of the accepted events, in batch order) are listed up to IDS_UP_TO of them.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.auth import Principal
from gateway.body import read_json
from gateway.input_bounds import ascii_int, json_refusal
from gateway.problems import Problem
from gateway.services import Services
from schemas.tracking import INGEST
from streams.ingest import IngestResult
from streams.kafka.async_producer import LogUnavailable

WRITE = "analytics:write"
MAX_BATCH_EVENTS = 10_000
IDS_UP_TO = 1_000
NDJSON = "application/x-ndjson"
# Items as their JSON text, left for the compiled tracking plan to parse and check at once
_RAW_ITEMS = msgspec.json.Decoder(list[msgspec.Raw])
_RAW_ITEM = msgspec.json.Decoder(msgspec.Raw)


async def ingest_event(request: Request) -> Response:
    services, principal = _authorized(request)
    item = await read_json(request, services.settings.max_body_bytes)
    result = await _ingest(services, [item], principal)
    return answer(result, batch=False)


async def ingest_batch(request: Request) -> Response:
    services, principal = _authorized(request)
    media = _media(request)
    raw = await _read_body(request, services.settings.ingest_max_body_bytes)
    items = parse_batch(raw, media)
    await services.rate_limits.charge_total(request, len(items))  # one unit per event
    result = await _ingest(services, items, principal)
    return answer(result, batch=True)


def parse_batch(raw: bytes, media: str) -> list[Any]:
    """The batch's events: 400 if not UTF-8 or not JSON, 413 past MAX_BATCH_EVENTS, 422 empty.

    An event is a msgspec.Raw, its JSON text, once msgspec has found the text well-formed;
    where msgspec does not, json.loads decides and answers with its reason, as before.
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        detail = f"the body is not UTF-8 (byte {exc.start}, line {line})"
        raise Problem(400, "malformed-json", detail) from None
    items = _ndjson(text) if media == NDJSON else _json_array(raw, text)
    if not items:
        raise Problem(422, "empty-batch", "the batch holds no events")
    return items


def _json_array(raw: bytes, text: str) -> list[Any]:
    if (refusal := json_refusal(text)) is not None:
        raise Problem(400, "malformed-json", f"the body is not accepted as JSON: {refusal}")
    try:
        items: Any = _RAW_ITEMS.decode(raw)
    except msgspec.DecodeError:  # not an array, or malformed: json.loads says why
        items = _json_value(text)
    if not isinstance(items, list):
        detail = "a batch is a JSON array of events (or NDJSON); one event goes to /ingest/event"
        raise Problem(422, "invalid-body", detail)
    if len(items) > MAX_BATCH_EVENTS:
        raise _too_many()
    return items


def _json_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        detail = f"the body is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        raise Problem(400, "malformed-json", detail) from None


def _ndjson(text: str) -> list[Any]:
    items: list[Any] = []
    # not splitlines(): U+2028 and friends may stand unescaped inside JSON strings
    for number, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        if len(items) == MAX_BATCH_EVENTS:
            raise _too_many()
        if (refusal := json_refusal(line)) is not None:
            detail = f"line {number} is not accepted as JSON: {refusal}"
            raise Problem(400, "malformed-json", detail, line=number)
        try:
            items.append(_RAW_ITEM.decode(line))
            continue
        except msgspec.DecodeError:
            pass  # json.loads decides, as before
        try:
            items.append(json.loads(line))
        except json.JSONDecodeError as exc:
            detail = f"line {number} is not JSON: {exc.msg} at column {exc.colno}"
            raise Problem(400, "malformed-json", detail, line=number) from None
    return items


def answer(result: IngestResult, *, batch: bool) -> Response:
    """202 if any event was accepted; 422 listing every error if none was."""
    errors = [
        {"index": r.index, "pointer": _pointer(r.index, e.pointer, batch), "detail": e.detail}
        for r in result.rejected
        for e in r.errors
    ]
    body: dict[str, Any] = {"accepted": result.accepted, "rejected": len(result.rejected)}
    if result.accepted == 0:
        detail = "the event does not match the tracking plan"
        if batch:
            detail = f"none of the {len(result.rejected)} events matches the tracking plan"
        raise Problem(
            422, "invalid-events", detail, errors=errors, accepted=0, rejected=body["rejected"]
        )
    if result.accepted <= IDS_UP_TO:
        body["event_ids"] = result.event_ids
    if errors:
        body["errors"] = errors
    return JSONResponse(body, 202)


def _pointer(index: int, pointer: str, batch: bool) -> str:
    """Into the request body; the root of a single event is "/", as elsewhere in the API."""
    return f"/{index}{pointer}" if batch else pointer or "/"


async def _ingest(services: Services, items: list[Any], sender: Principal) -> IngestResult:
    """A sender without analytics:ingest tracks only itself."""
    only_for = None if INGEST in sender.scopes else sender.subject
    try:
        return await services.ingestor.ingest(items, sender.subject, only_for)
    except LogUnavailable as exc:
        detail = f"the event log did not take the events: {exc}"
        raise Problem(503, "log-unavailable", detail, headers={"Retry-After": "5"}) from None


def _authorized(request: Request) -> tuple[Services, Principal]:
    services: Services = request.state.services
    principal = services.verifier.principal(request.headers.get("authorization"))
    principal.require(WRITE)
    return services, principal


def _media(request: Request) -> str:
    media = request.headers.get("content-type", "application/json").split(";")[0].strip()
    if media in ("application/json", NDJSON) or media.endswith("+json"):
        return media
    raise Problem(415, "unsupported-media-type", f"send application/json or {NDJSON}, not {media}")


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 as soon as it is known to pass `limit` bytes."""
    declared = ascii_int(request.headers.get("content-length", ""), 18)
    if declared is not None and declared > limit:
        raise _too_large(limit)
    raw = bytearray()
    async for chunk in request.stream():
        raw.extend(chunk)
        if len(raw) > limit:
            raise _too_large(limit)
    return bytes(raw)


def _too_large(limit: int) -> Problem:
    return Problem(413, "body-too-large", f"the body exceeds {limit} bytes")


def _too_many() -> Problem:
    detail = f"a batch holds at most {MAX_BATCH_EVENTS} events"
    return Problem(413, "too-many-events", detail, max_events=MAX_BATCH_EVENTS)


def ingest_routes() -> list[Route]:
    return [
        Route("/api/v1/ingest/event", ingest_event, methods=["POST"]),
        Route("/api/v1/ingest/batch", ingest_batch, methods=["POST"]),
    ]
