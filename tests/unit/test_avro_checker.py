"""The compiled Avro checkers pass good data and never pass what fastavro refuses."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from fastavro.validation import validate
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.avro_checker import compile_checker
from schemas.avro_writer import compile_writer
from schemas.codec import AvroCodec, SchemaViolation
from schemas.registry import default_registry

REGISTRY = default_registry()
COVERED = [n for n in REGISTRY.names() if compile_writer(REGISTRY.latest(n).parsed) is not None]
JUNK = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5)
    | st.binary(max_size=3) | st.datetimes(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner)
    | st.tuples(st.text(max_size=3), inner),
    max_leaves=6,
)  # fmt: skip


def data(schema: Any, wrong: bool) -> st.SearchStrategy[Any]:
    """Data of a parsed schema; with `wrong`, any part of it may be junk instead."""
    good = _data(schema, wrong)
    return good | JUNK if wrong else good


def _data(schema: Any, wrong: bool) -> st.SearchStrategy[Any]:
    if isinstance(schema, list):
        return st.one_of([data(branch, wrong) for branch in schema])
    kind = schema if isinstance(schema, str) else schema["type"]
    if isinstance(kind, (dict, list)):
        return data(kind, wrong)
    if kind == "record":
        fields = {f["name"]: data(f["type"], wrong) for f in schema["fields"]}
        if wrong:
            return st.fixed_dictionaries({}, optional=fields)
        return st.fixed_dictionaries(fields)
    if kind == "array":
        return st.lists(data(schema["items"], wrong), max_size=3)
    if kind == "map":
        return st.dictionaries(st.text(max_size=5), data(schema["values"], wrong), max_size=3)
    if isinstance(schema, dict) and schema.get("logicalType") == "timestamp-millis":
        return st.datetimes(timezones=st.just(UTC)) | st.integers(-(2**50), 2**50)
    return {
        "string": st.text(max_size=10),
        "int": st.integers(-(2**31), 2**31 - 1),
        "long": st.integers(-(2**63), 2**63 - 1),
        "boolean": st.booleans(),
        "double": st.floats() | st.integers(-(2**53), 2**53),
        "null": st.none(),
    }[kind]


def test_every_schema_the_writer_covers_has_a_checker() -> None:
    assert COVERED
    for name in COVERED:
        assert compile_checker(REGISTRY.latest(name).parsed) is not None, name


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(COVERED), st.data())
def test_good_data_passes_at_once(name: str, drawn: st.DataObject) -> None:
    schema = REGISTRY.latest(name).parsed
    datum = drawn.draw(data(schema, wrong=False))
    check = compile_checker(schema)
    assert check is not None and check(datum)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(COVERED), st.data())
def test_nothing_fastavro_refuses_passes(name: str, drawn: st.DataObject) -> None:
    schema = REGISTRY.latest(name).parsed
    datum = drawn.draw(data(schema, wrong=True))
    check = compile_checker(schema)
    assert check is not None
    if check(datum):
        assert validate(datum, schema, raise_errors=False)


def test_refused_data_names_its_fields_as_fastavro_does() -> None:
    codec = AvroCodec()
    bad = {"kind": 1, "subject_id": "s-1", "attributes": {"ip": "127.0.0.1"}}
    with pytest.raises(SchemaViolation) as refused:
        codec.validate_data("activity.recorded", bad)
    assert refused.value.schema == "activity.recorded v1"
    assert refused.value.fields == ["nexus.events.ActivityRecordedData.kind"]


def test_edge_values_left_to_fastavro_still_pass_if_it_accepts_them() -> None:
    codec = AvroCodec()
    codec.validate_data("activity.recorded", {"kind": "k", "subject_id": "s"})  # a default
    with pytest.raises(SchemaViolation):
        codec.validate_data("activity.recorded", {"kind": "k", "subject_id": True})
    assert compile_checker({"type": "long", "logicalType": "timestamp-millis"}) is not None
    naive = compile_checker({"type": "long", "logicalType": "timestamp-millis"})
    assert naive is not None and not naive(datetime(2025, 1, 1)) and naive(2**40)
