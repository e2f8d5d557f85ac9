"""Every string and array a command takes is bounded by its schema, and the deciders agree."""

from __future__ import annotations

from typing import Any

import pytest

from aggregates.user import decider as user
from aggregates.workspace import decider as workspace
from schemas.json_input import InvalidInput, from_json
from schemas.registry import default_registry

COMMANDS = default_registry().names("commands")


def data_schema(command: str) -> dict[str, Any]:
    fields = default_registry().latest(command).raw["fields"]
    return next(f["type"] for f in fields if f["name"] == "data")


def unbounded(schema: Any, at: str) -> list[str]:
    """Pointers to strings without maxLength and arrays without maxItems."""
    if isinstance(schema, list):
        return [p for branch in schema for p in unbounded(branch, at)]
    if schema == "string":
        return [at]
    if not isinstance(schema, dict):
        return []
    match schema["type"]:
        case "string":
            return [] if "maxLength" in schema else [at]
        case "array":
            inner = unbounded(schema["items"], f"{at}/*")
            return inner if "maxItems" in schema else [at, *inner]
        case "record":
            return [p for f in schema["fields"] for p in unbounded(f["type"], f"{at}/{f['name']}")]
        case _:
            return unbounded(schema["type"], at) if isinstance(schema["type"], dict) else []


@pytest.mark.parametrize("command", COMMANDS)
def test_every_string_and_array_is_bounded(command: str) -> None:
    assert unbounded(data_schema(command), "") == []


def max_length(command: str, field: str) -> int:
    found = next(f["type"] for f in data_schema(command)["fields"] if f["name"] == field)
    branch = next(b for b in (found if isinstance(found, list) else [found]) if b != "null")
    return int(branch["maxLength"])


def test_decider_limits_are_the_schema_limits() -> None:
    assert max_length("RegisterUser", "name") == user.MAX_NAME_LENGTH
    assert max_length("UpdateUserProfile", "name") == user.MAX_NAME_LENGTH
    assert max_length("RegisterUser", "email") == user.MAX_EMAIL_LENGTH
    assert max_length("UpdateUserProfile", "email") == user.MAX_EMAIL_LENGTH
    assert max_length("CreateWorkspace", "name") == workspace.MAX_NAME_LENGTH
    assert max_length("RenameWorkspace", "name") == workspace.MAX_NAME_LENGTH


def test_an_oversized_field_is_named() -> None:
    schema = default_registry().latest("RegisterUser").parsed
    data = next(f["type"] for f in schema["fields"] if f["name"] == "data")
    with pytest.raises(InvalidInput) as info:
        from_json(data, {"email": "a@" + "." * 100_000, "name": "x"})
    assert [(e.pointer, e.reason) for e in info.value.errors] == [
        ("/email", "must be at most 254 characters")
    ]


def test_too_many_channels_are_refused() -> None:
    schema = default_registry().latest("SetNotificationPreferences").parsed
    data = next(f["type"] for f in schema["fields"] if f["name"] == "data")
    channel = {"channel": "push", "address": "device"}
    with pytest.raises(InvalidInput) as info:
        from_json(data, {"channels": [channel] * 7})
    assert info.value.errors[0].pointer == "/channels"
