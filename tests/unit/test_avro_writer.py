"""The compiled Avro writers give fastavro's bytes for every schema they cover."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from io import BytesIO
from typing import Any

import pytest
from fastavro import schemaless_writer
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.avro_writer import compile_writer, zigzag_varint
from schemas.codec import AvroCodec
from schemas.registry import default_registry

REGISTRY = default_registry()
COVERED = [n for n in REGISTRY.names() if compile_writer(REGISTRY.latest(n).parsed) is not None]
TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=80)  # UTF-8 can encode it
MOMENTS = st.datetimes(
    datetime(1900, 1, 1), datetime(2300, 1, 1), timezones=st.just(UTC)
) | st.integers(-(2**50), 2**50)


def values(schema: Any) -> st.SearchStrategy[Any]:
    """Data of a parsed schema, of the kinds compile_writer covers."""
    if isinstance(schema, list):
        return st.one_of([values(branch) for branch in schema])
    kind = schema if isinstance(schema, str) else schema["type"]
    if isinstance(kind, (dict, list)):
        return values(kind)
    if kind == "record":
        return st.fixed_dictionaries({f["name"]: values(f["type"]) for f in schema["fields"]})
    if kind == "array":
        return st.lists(values(schema["items"]), max_size=4)
    if kind == "map":
        return st.dictionaries(TEXT, values(schema["values"]), max_size=4)
    if isinstance(schema, dict) and schema.get("logicalType") == "timestamp-millis":
        return MOMENTS
    return {
        "string": TEXT,
        "int": st.integers(-(2**31), 2**31 - 1),
        "long": st.integers(-(2**63), 2**63 - 1),
        "boolean": st.booleans(),
        "double": st.floats(allow_nan=False),
        "null": st.none(),
    }[kind]


def fastavro_bytes(name: str, datum: Any) -> bytes:
    out = BytesIO()
    schemaless_writer(out, REGISTRY.latest(name).parsed, datum)
    return out.getvalue()


def test_the_tracking_plan_and_its_rejections_are_covered() -> None:
    tracking = set(REGISTRY.names("tracking")) - {"analytics.generic"}
    assert tracking | {"analytics.rejected"} <= set(COVERED)
    # its map values are a union of five types
    assert compile_writer(REGISTRY.latest("analytics.generic").parsed) is None
    assert "activity.recorded" in COVERED  # a map of strings (EventBus.publish_many)


@pytest.mark.parametrize("name", COVERED)
@settings(max_examples=15, deadline=None)
@given(data=st.data())
def test_a_compiled_writer_writes_what_fastavro_writes(name: str, data: st.DataObject) -> None:
    datum = data.draw(values(REGISTRY.latest(name).parsed))
    assert compile_writer(REGISTRY.latest(name).parsed)(datum) == fastavro_bytes(name, datum)  # type: ignore[misc]


@given(st.integers(-(2**63), 2**63 - 1))
def test_varints_are_zigzag_seven_bits_a_byte(n: int) -> None:
    zigzag, expected = (n << 1) ^ (n >> 63), bytearray()
    while True:
        expected.append((zigzag & 0x7F) | (0x80 if zigzag > 0x7F else 0))
        zigzag >>= 7
        if not zigzag:
            break
    assert zigzag_varint(n) == bytes(expected)


def test_the_codecs_encoder_is_single_object_encoding_that_decodes_back() -> None:
    codec = AvroCodec()
    at = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(microseconds=1999)  # floored to 1 ms
    record = {
        "event_id": "e-1", "type": "page.view", "user_id": None, "anonymous_id": "a-1",
        "timestamp": at, "timestamp_defaulted": True, "received_at": at, "source": "s",
        "data": {"page": "/", "referrer": None, "duration_ms": 7},
    }  # fmt: skip
    encoded = codec.encoder("page.view")(record)
    assert encoded == codec.encode("page.view", record)
    schema, decoded = codec.decode(encoded)
    assert schema.name == "page.view"
    assert decoded == {**record, "timestamp": at.replace(microsecond=1000),
                       "received_at": at.replace(microsecond=1000)}  # fmt: skip
