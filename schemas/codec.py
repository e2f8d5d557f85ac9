"""Avro single-object encoding (0xC3 0x01, 8-byte CRC-64-AVRO fingerprint, body).

Any Avro implementation holding the files in schemas/ can decode what this writes.
Readers resolve every older version of a schema to the latest one of the same name.
"""

from __future__ import annotations

from collections.abc import Callable
from io import BytesIO
from typing import Any

from fastavro import parse_schema, schemaless_reader, schemaless_writer
from fastavro.validation import ValidationError, validate

from schemas.avro_checker import Checker, compile_checker
from schemas.avro_writer import compile_writer
from schemas.registry import SchemaRegistry, SchemaVersion, default_registry

MAGIC = b"\xc3\x01"
HEADER_SIZE = len(MAGIC) + 8
Encoder = Callable[[dict[str, Any]], bytes]


class DecodeError(Exception):
    """A message that cannot be decoded; `reason` is a stable dead-letter code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class SchemaViolation(ValueError):
    """A record that does not match its schema; `fields` name the offending fields."""

    def __init__(self, schema: str, fields: list[str]) -> None:
        super().__init__(f"record does not match {schema}: {', '.join(fields)}")
        self.schema = schema
        self.fields = fields


class AvroCodec:
    """Encodes records by schema name and decodes any known single-object message."""

    def __init__(self, registry: SchemaRegistry | None = None) -> None:
        self.registry = registry or default_registry()
        self._encoders: dict[str, Encoder] = {}
        self._hinted: dict[bytes, Any] = {}  # fingerprint -> schema as fastavro marks it parsed
        self._data_checks: dict[str, tuple[Any, Checker | None]] = {}

    def encoder(self, name: str) -> Encoder:
        """Encodes unchecked records of the latest `name`, as `encode(..., check=False)` does,
        through a writer compiled once (schemas.avro_writer) where the schema allows it."""
        if (known := self._encoders.get(name)) is not None:
            return known
        schema = self.registry.latest(name)
        compiled = compile_writer(schema.parsed, schema.label, MAGIC + schema.fingerprint)
        if compiled is None:
            return self._encoders.setdefault(
                name, lambda record: self.encode(name, record, check=False)
            )
        return self._encoders.setdefault(name, compiled)

    def encode(self, name: str, record: dict[str, Any], *, check: bool = True) -> bytes:
        schema = self.registry.latest(name)
        if check:
            self.validate(schema, record)
        out = BytesIO()
        out.write(MAGIC)
        out.write(schema.fingerprint)
        schemaless_writer(out, self._hinted_schema(schema), record)
        return out.getvalue()

    def _hinted_schema(self, schema: SchemaVersion) -> Any:
        """The schema parsed with fastavro's own mark, so that fastavro does not parse it
        again on every call (the registry's copy stays unmarked for everything else)."""
        hinted = self._hinted.get(schema.fingerprint)
        if hinted is None:
            hinted = self._hinted[schema.fingerprint] = parse_schema(schema.raw)
        return hinted

    def validate_data(self, name: str, data: dict[str, Any]) -> None:
        """Check only the `data` part: for records whose envelope the caller built itself.

        A generated checker (schemas.avro_checker) passes good data at once; fastavro judges
        the rest, so a refusal names the same fields it always did."""
        if (known := self._data_checks.get(name)) is None:
            known = self._data_checks.setdefault(name, self._data_check(name))
        data_schema, check = known
        if check is not None and check(data):
            return
        try:
            validate(data, data_schema, raise_errors=True)
        except ValidationError as exc:
            fields = sorted({str(e.field) for e in exc.errors})
            raise SchemaViolation(self.registry.latest(name).label, fields) from None

    def _data_check(self, name: str) -> tuple[Any, Checker | None]:
        schema = self.registry.latest(name)
        data_schema = next(f["type"] for f in schema.parsed["fields"] if f["name"] == "data")
        return data_schema, compile_checker(data_schema, f"{schema.label} data")

    @staticmethod
    def validate(schema: SchemaVersion, record: dict[str, Any]) -> None:
        try:
            validate(record, schema.parsed, raise_errors=True)
        except ValidationError as exc:
            fields = sorted({str(e.field) for e in exc.errors})
            raise SchemaViolation(schema.label, fields) from None

    def writer_schema(self, payload: bytes | None) -> SchemaVersion:
        if payload is None or len(payload) < HEADER_SIZE or payload[:2] != MAGIC:
            raise DecodeError("not_avro", "missing the Avro single-object header 0xC3 0x01")
        schema = self.registry.by_fingerprint(payload[2:HEADER_SIZE])
        if schema is None:
            fp = payload[2:HEADER_SIZE].hex()
            raise DecodeError("unknown_fingerprint", f"no schema under schemas/ has {fp}")
        return schema

    def decode(
        self, payload: bytes | None, writer: SchemaVersion | None = None
    ) -> tuple[SchemaVersion, dict[str, Any]]:
        """Decode to the latest version of the writer's schema name; `writer`, if the caller
        has it already, must be `writer_schema(payload)`."""
        writer = writer or self.writer_schema(payload)
        assert payload is not None
        reader = self.registry.latest(writer.name)
        body = BytesIO(payload[HEADER_SIZE:])
        try:
            # no reader schema to resolve to when the writer's is the latest
            hinted_reader = None if writer is reader else self._hinted_schema(reader)
            record = schemaless_reader(body, self._hinted_schema(writer), hinted_reader)
        except Exception as exc:  # fastavro raises many types on corrupt bytes
            raise DecodeError("corrupt_body", f"{writer.label}: {type(exc).__name__}") from None
        if body.tell() != len(payload) - HEADER_SIZE:
            raise DecodeError("corrupt_body", f"{writer.label}: trailing bytes after the record")
        if not isinstance(record, dict):
            raise DecodeError("corrupt_body", f"{writer.label}: not a record")
        return reader, record
