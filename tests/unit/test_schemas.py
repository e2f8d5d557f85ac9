"""Schemas are the source of truth: encoding, fingerprints, evolution, and Python parity."""

from __future__ import annotations

import dataclasses
import json
import shutil
import struct
from datetime import UTC, datetime
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest
from fastavro import schemaless_writer

from aggregates.registry import COMMANDS, DECIDERS
from schemas.codec import AvroCodec, DecodeError, SchemaViolation
from schemas.compatibility import check_registry
from schemas.registry import SCHEMA_ROOT, SchemaRegistry, default_registry

EMPTY = 0xC15D213AA4D7A795


def crc64_avro(data: bytes) -> int:
    """The Avro specification's reference fingerprint, written out independently."""
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (EMPTY & -(fp & 1))
        table.append(fp & 0xFFFFFFFFFFFFFFFF)
    fp = EMPTY
    for byte in data:
        fp = (fp >> 8) ^ table[(fp ^ byte) & 0xFF]
    return fp


def event(type_: str, data: dict[str, Any], version: int = 1) -> dict[str, Any]:
    return {
        "event_id": "e-1",
        "type": type_,
        "aggregate_type": type_.split(".")[0],
        "aggregate_id": "a-1",
        "aggregate_version": version,
        "occurred_at": datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC),
        "correlation_id": "c-1",
        "causation_id": None,
        "actor": "tester",
        "data": data,
    }


def test_single_object_header_is_magic_then_little_endian_crc64_of_canonical_form() -> None:
    codec = AvroCodec()
    payload = codec.encode(
        "user.registered", event("user.registered", {"email": "a@b.co", "name": "A"})
    )
    schema = default_registry().latest("user.registered")
    from fastavro.schema import to_parsing_canonical_form

    expected = struct.pack("<Q", crc64_avro(to_parsing_canonical_form(schema.raw).encode()))
    assert payload[:2] == b"\xc3\x01"
    assert payload[2:10] == expected


def test_roundtrip_keeps_every_field() -> None:
    codec = AvroCodec()
    record = event("user.registered", {"email": "a@b.co", "name": "A", "locale": "fr"})
    schema, decoded = codec.decode(codec.encode("user.registered", record))
    assert schema.label == "user.registered v2"
    assert decoded == record


def test_an_older_version_is_read_with_the_latest_schema() -> None:
    registry = default_registry()
    v1 = registry.versions("user.registered")[0]
    body = BytesIO()
    schemaless_writer(body, v1.parsed, event("user.registered", {"email": "a@b.co", "name": "A"}))
    _, decoded = AvroCodec().decode(b"\xc3\x01" + v1.fingerprint + body.getvalue())
    assert decoded["data"] == {"email": "a@b.co", "name": "A", "locale": None}


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"", "not_avro"),
        (b'{"type": "user.registered"}', "not_avro"),
        (b"\xc3\x01" + b"\x00" * 8 + b"body", "unknown_fingerprint"),
        (None, "not_avro"),
    ],
)
def test_undecodable_payloads_name_their_reason(payload: bytes | None, reason: str) -> None:
    with pytest.raises(DecodeError) as caught:
        AvroCodec().decode(payload)
    assert caught.value.reason == reason


def test_truncated_and_padded_bodies_are_corrupt() -> None:
    codec = AvroCodec()
    good = codec.encode("workspace.renamed", event("workspace.renamed", {"name": "Acme"}))
    for bad in (good[:-3], good + b"\x00\x01"):
        with pytest.raises(DecodeError) as caught:
            codec.decode(bad)
        assert caught.value.reason == "corrupt_body"


def test_encoding_refuses_a_record_that_breaks_its_schema() -> None:
    with pytest.raises(SchemaViolation) as caught:
        AvroCodec().encode("workspace.renamed", event("workspace.renamed", {"name": 7}))
    assert "nexus.events.WorkspaceRenamedData.name" in caught.value.fields


def test_every_schema_history_is_fully_compatible() -> None:
    assert check_registry(default_registry()) == []


def test_an_incompatible_new_version_is_caught(tmp_path: Path) -> None:
    shutil.copytree(
        SCHEMA_ROOT / "events" / "workspace.renamed", tmp_path / "events" / "workspace.renamed"
    )
    raw = json.loads((tmp_path / "events/workspace.renamed/v1.avsc").read_text())
    raw["fields"][-1]["type"]["fields"].append({"name": "slug", "type": "string"})  # no default
    (tmp_path / "events/workspace.renamed/v2.avsc").write_text(json.dumps(raw))
    problems = check_registry(SchemaRegistry(tmp_path))
    assert [(p.reader, p.writer) for p in problems] == [(2, 1)]
    assert "reader_field_missing_default_value" in problems[0].problems


def test_every_event_schema_starts_with_the_envelope() -> None:
    registry = default_registry()
    envelope = json.loads((SCHEMA_ROOT / "envelopes" / "event.avsc").read_text())["fields"]
    for name in registry.names("events"):
        for version in registry.versions(name):
            fields = version.raw["fields"]
            assert fields[: len(envelope)] == envelope, version.label
            assert [f["name"] for f in fields[len(envelope) :]] == ["data"], version.label


def test_every_command_schema_starts_with_the_command_envelope() -> None:
    registry = default_registry()
    envelope = json.loads((SCHEMA_ROOT / "envelopes" / "command.avsc").read_text())["fields"]
    for name in registry.names("commands"):
        assert registry.latest(name).raw["fields"][: len(envelope)] == envelope, name


def _data_fields(name: str) -> list[str]:
    schema = default_registry().latest(name).raw
    data = next(f for f in schema["fields"] if f["name"] == "data")
    return [f["name"] for f in data["type"]["fields"]]


def test_python_events_match_their_schemas() -> None:
    types = {t: cls for d in DECIDERS.values() for t, cls in d.event_types.items()}
    assert set(types) == {
        n for n in default_registry().names("events") if n.split(".")[0] in DECIDERS
    }
    for name, cls in types.items():
        assert [f.name for f in dataclasses.fields(cls)] == _data_fields(name), name


def test_python_commands_match_their_schemas() -> None:
    assert set(COMMANDS) == set(default_registry().names("commands"))
    for name, decider in COMMANDS.items():
        cls = decider.command_types[name]
        assert [f.name for f in dataclasses.fields(cls)] == _data_fields(name), name
