"""The channel vocabulary in Python is the one the Avro schemas spell out."""

from __future__ import annotations

from typing import Any

import pytest

from aggregates.channels import CHANNELS
from schemas.registry import default_registry


def enum_symbols(schema: Any, name: str) -> list[list[str]]:
    """The symbols of every enum called `name` anywhere inside a parsed schema."""
    found: list[list[str]] = []
    if isinstance(schema, dict):
        if schema.get("type") == "enum" and schema.get("name", "").split(".")[-1] == name:
            found.append(schema["symbols"])
        for value in schema.values():
            found.extend(enum_symbols(value, name))
    elif isinstance(schema, list):
        for value in schema:
            found.extend(enum_symbols(value, name))
    return found


@pytest.mark.parametrize("schema", ["user.preferences_set", "SetNotificationPreferences"])
def test_the_schemas_channel_enum_is_the_channel_vocabulary(schema: str) -> None:
    symbols = enum_symbols(default_registry().latest(schema).raw, "Channel")
    assert symbols and all(s == list(CHANNELS) for s in symbols)
