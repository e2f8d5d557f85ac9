"""Request bodies: bounded reading, strict JSON, and checking against a command's schema."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request

from gateway.input_bounds import ascii_int, json_refusal
from gateway.problems import Problem
from schemas.json_input import InvalidInput, from_json
from schemas.registry import SchemaRegistry


async def read_json(request: Request, limit: int, *, optional: bool = False) -> Any:
    """The parsed JSON body; 413 past `limit` bytes, 415 for other media, 400 if malformed
    or past the bounds of gateway.input_bounds (nesting, long numbers, NaN)."""
    declared = ascii_int(request.headers.get("content-length", ""), 18)
    if declared is not None and declared > limit:
        raise _too_large(limit)
    media = request.headers.get("content-type", "application/json").split(";")[0].strip()
    if media != "application/json" and not media.endswith("+json"):
        raise Problem(415, "unsupported-media-type", f"send application/json, not {media}")
    raw = bytearray()
    async for chunk in request.stream():
        raw.extend(chunk)
        if len(raw) > limit:
            raise _too_large(limit)
    if not raw and optional:
        return {}
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Problem(400, "malformed-json", f"the body is not UTF-8 (byte {exc.start})") from None
    if (refusal := json_refusal(text)) is not None:
        raise Problem(400, "malformed-json", f"the body is not accepted as JSON: {refusal}")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        detail = f"the body is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        raise Problem(400, "malformed-json", detail) from None


def command_data(registry: SchemaRegistry, command: str, body: Any) -> dict[str, Any]:
    """The body as the command's Avro `data` record; 422 naming every bad field."""
    schema = registry.latest(command).parsed
    data_schema = next(f["type"] for f in schema["fields"] if f["name"] == "data")
    try:
        data: dict[str, Any] = from_json(data_schema, body)
    except InvalidInput as exc:
        errors = [{"pointer": e.pointer or "/", "detail": e.reason} for e in exc.errors]
        raise Problem(
            422, "invalid-body", f"the body does not match {command}", errors=errors
        ) from None
    return data


def _too_large(limit: int) -> Problem:
    return Problem(413, "body-too-large", f"the body exceeds {limit} bytes")
