"""Request bodies: bounded reading, strict JSON, and checking against a command's schema."""

from __future__ import annotations

import json
from typing import Any

import msgspec
from starlette.requests import Request

from gateway.input_bounds import ascii_int, json_refusal
from gateway.problems import Problem
from schemas.json_input import InvalidInput, from_json
from schemas.json_structs import data_struct
from schemas.registry import SchemaRegistry, SchemaVersion


async def read_json(request: Request, limit: int, *, optional: bool = False) -> Any:
    """The parsed JSON body; 413 past `limit` bytes, 415 for other media, 400 if malformed
    or past the bounds of gateway.input_bounds (nesting, long numbers, NaN)."""
    return parse_json(await read_body(request, limit), optional=optional)


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body of a JSON request; 413 past `limit` bytes, 415 for other media."""
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
    return bytes(raw)


def parse_json(raw: bytes, *, optional: bool = False) -> Any:
    """`raw` parsed; an empty body is {} when `optional`. 400 as read_json says."""
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
    data_schema = _data_schema(registry.latest(command))
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


def quick_command_data(
    registry: SchemaRegistry, command: str, raw: bytes, id_field: str | None
) -> tuple[dict[str, Any], str | None] | None:
    """The command's `data` and the body's `id_field`, decoded and checked in one msgspec
    pass (schemas.json_structs); None where that pass does not decide, and the body is then
    read by parse_json and command_data, which answer its problems. Only text without a
    backslash is taken: with no escapes it cannot hold U+0000 or a lone surrogate, and a
    covered record bounds nesting and numbers, so gateway.input_bounds would pass it too."""
    if b"\\" in raw:
        return None
    decoder = _decoder(registry.latest(command), id_field)
    if decoder is None:
        return None
    try:
        decoded = decoder.decode(raw)
    except (msgspec.DecodeError, UnicodeDecodeError):
        return None
    data = msgspec.structs.asdict(decoded)
    return data, (data.pop(id_field) if id_field else None)


# Compiled once per schema version and body id field; pure, so shared by every app.
_decoders: dict[tuple[bytes, str | None], msgspec.json.Decoder[Any] | None] = {}


def _decoder(schema: SchemaVersion, id_field: str | None) -> msgspec.json.Decoder[Any] | None:
    if (key := (schema.fingerprint, id_field)) in _decoders:
        return _decoders[key]
    data_schema = _data_schema(schema)
    struct = None
    if id_field not in {f["name"] for f in data_schema["fields"]}:
        extra = () if id_field is None else ((id_field, str | None, None),)
        struct = data_struct(f"{schema.name}_v{schema.version}", data_schema, extra)
    return _decoders.setdefault(key, None if struct is None else msgspec.json.Decoder(struct))


def _data_schema(schema: SchemaVersion) -> Any:
    return next(f["type"] for f in schema.parsed["fields"] if f["name"] == "data")
