"""JSON bodies checked against Avro schemas, with errors as JSON pointers."""

from __future__ import annotations

from typing import Any

import pytest

from schemas.json_input import InvalidInput, from_json

SCHEMA: dict[str, Any] = {
    "type": "record",
    "name": "T",
    "fields": [
        {"name": "name", "type": "string"},
        {"name": "count", "type": "int", "default": 1},
        {"name": "ratio", "type": ["null", "double"], "default": None},
        {"name": "tags", "type": {"type": "array", "items": "string"}, "default": []},
        {"name": "attrs", "type": {"type": "map", "values": "long"}, "default": {}},
        {"name": "kind", "type": {"type": "enum", "name": "K", "symbols": ["a", "b"]}},
        {"name": "flag", "type": "boolean", "default": False},
    ],
}


def errors(value: Any) -> dict[str, str]:
    with pytest.raises(InvalidInput) as caught:
        from_json(SCHEMA, value)
    return {e.pointer: e.reason for e in caught.value.errors}


def test_defaults_fill_what_is_absent() -> None:
    assert from_json(SCHEMA, {"name": "n", "kind": "a"}) == {
        "name": "n", "count": 1, "ratio": None, "tags": [], "attrs": {}, "kind": "a", "flag": False,
    }  # fmt: skip


def test_every_bad_field_is_named_by_pointer() -> None:
    found = errors({"count": "2", "ratio": "x", "tags": ["ok", 3], "attrs": {"k": 1.5},
                    "kind": "c", "flag": 1, "extra": True})  # fmt: skip
    assert found == {
        "/name": "is required",
        "/count": "must be an integer",
        "/ratio": "must be a number",
        "/tags/1": "must be a string",
        "/attrs/k": "must be an integer",
        "/kind": "must be one of a, b",
        "/flag": "must be a boolean",
        "/extra": "unknown field",
    }


def test_ints_are_bounded_and_booleans_are_not_numbers() -> None:
    assert errors({"name": "n", "kind": "a", "count": 2**31}) == {"/count": "must be an integer"}
    assert errors({"name": "n", "kind": "a", "count": True}) == {"/count": "must be an integer"}
    assert errors({"name": "n", "kind": "a", "ratio": False}) == {"/ratio": "must be a number"}


def test_a_non_object_body_is_rejected_at_the_root() -> None:
    assert errors([1, 2]) == {"": "must be an object"}
