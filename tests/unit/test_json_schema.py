"""The JSON Schema derived from an Avro schema accepts exactly what from_json accepts.

Values are drawn near each schema (its own shape, one step off it, or any JSON), so both
sides are tried on valid input, on each kind of mistake, and on bounds to either side.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from schemas.json_input import InvalidInput, from_json
from schemas.json_schema import json_schema
from schemas.registry import default_registry

# Python's json gives 1.0 for "1.0", which JSON Schema calls an integer and from_json
# refuses as a long; schemathesis and clients send integers as integers, so leave it out.
FLOATS = st.floats(allow_nan=False, allow_infinity=False).filter(lambda f: not f.is_integer())
SCALARS = st.none() | st.booleans() | st.integers() | FLOATS | st.text(max_size=4)
ANY_JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=6,
)
INT_BITS = {"int": 31, "long": 63}


def near(schema: Any) -> st.SearchStrategy[Any]:
    """Mostly values shaped like `schema` (each part near its own schema), sometimes any."""
    return st.one_of(shaped(schema), shaped(schema), ANY_JSON)


def shaped(schema: Any) -> st.SearchStrategy[Any]:
    if isinstance(schema, list):
        return st.one_of([st.none(), *(near(b) for b in schema if b != "null")])
    kind = schema if isinstance(schema, str) else schema["type"]
    if isinstance(kind, (dict, list)):
        return shaped(kind)
    if kind == "record":
        return _record(schema)
    if kind == "array":
        most = schema.get("maxItems", 3)
        return st.lists(near(schema["items"]), max_size=most + 1)
    if kind == "map":
        return st.dictionaries(st.text(max_size=4), near(schema["values"]), max_size=3)
    if kind == "enum":
        return st.sampled_from([*schema["symbols"], "not-a-symbol"])
    if kind == "string" and isinstance(schema, dict) and "maxLength" in schema:
        longest = schema["maxLength"]
        return st.integers(max(longest - 1, 0), longest + 1).map("é".__mul__)
    if kind in INT_BITS:
        bound = 2 ** INT_BITS[kind]
        return st.sampled_from([-bound - 1, -bound, bound - 1, bound]) | st.integers(-9, 9)
    return {
        "null": st.none(),
        "boolean": st.booleans(),
        "string": st.text(max_size=4),
        "float": st.integers(-9, 9) | FLOATS,
        "double": st.integers(-9, 9) | FLOATS,
    }.get(kind, ANY_JSON)


def _record(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    required = {f["name"]: near(f["type"]) for f in schema["fields"] if "default" not in f}
    optional = {f["name"]: near(f["type"]) for f in schema["fields"] if "default" in f}
    optional["unknown_field"] = st.just(1)
    return st.fixed_dictionaries(required, optional=optional) | st.dictionaries(
        st.sampled_from(list(required) or ["x"]), ANY_JSON
    )


def accepted(schema: Any, value: Any) -> bool:
    try:
        from_json(schema, value)
    except InvalidInput:
        return False
    return True


def data_schema(name: str) -> Any:
    parsed = default_registry().latest(name).parsed
    return next(f["type"] for f in parsed["fields"] if f["name"] == "data")


TEST_SCHEMA: dict[str, Any] = {
    "type": "record",
    "name": "T",
    "fields": [
        {"name": "count", "type": "int", "default": 1},
        {"name": "total", "type": "long"},
        {"name": "ratio", "type": ["null", "double"], "default": None},
        {"name": "attrs", "type": {"type": "map", "values": "boolean"}, "default": {}},
        {"name": "raw", "type": ["null", "bytes"], "default": None},
        {"name": "either", "type": ["string", {"type": "array", "items": "int", "maxItems": 2}]},
    ],
}
REGISTRY = default_registry()
SCHEMAS = {
    "T": TEST_SCHEMA,
    **{name: data_schema(name) for name in REGISTRY.names("commands")},
    **{name: data_schema(name) for name in REGISTRY.names("tracking")},
}


@pytest.mark.parametrize("name", sorted(SCHEMAS))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_json_schema_accepts_what_from_json_accepts(name: str, data: st.DataObject) -> None:
    schema = SCHEMAS[name]
    validator = Draft202012Validator(json_schema(schema))
    value = data.draw(near(schema))
    assert validator.is_valid(value) == accepted(schema, value), value


def test_bounds_and_requirements_are_stated() -> None:
    described = json_schema(data_schema("SetNotificationPreferences"))
    assert isinstance(described, dict)
    channels = described["properties"]["channels"]
    assert channels["maxItems"] == 6 and described["required"] == ["channels"]
    address = channels["items"]["properties"]["address"]
    assert address == {"type": "string", "maxLength": 2048}
    assert channels["items"]["properties"]["enabled"] == {"type": "boolean", "default": True}
    assert described["properties"]["quiet_hours"]["type"] == ["object", "null"]
    assert described["additionalProperties"] is False
