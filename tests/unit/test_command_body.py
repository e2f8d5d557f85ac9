"""The one-pass msgspec read of a command body agrees with the full rules, or stands aside."""

from __future__ import annotations

import pytest

from gateway.body import command_data, parse_json, quick_command_data
from schemas.registry import default_registry

REGISTRY = default_registry()


@pytest.mark.parametrize(
    "raw",
    [
        b'{"email": "a@example.com", "name": "Ann"}',
        b'{"email": "a@example.com", "name": "Ann", "locale": "en", "user_id": "ann"}',
        b'{"email": "a@example.com", "name": "Ann", "locale": null, "user_id": null}',
        '{"email": "é@example.com", "name": "Zoë"}'.encode(),
        b'{"email": "x", "email": "a@example.com", "name": "Ann"}',  # the last one counts
    ],
)
def test_what_it_takes_is_what_the_full_rules_give(raw: bytes) -> None:
    quick = quick_command_data(REGISTRY, "RegisterUser", raw, "user_id")
    body = parse_json(raw)
    chosen = body.pop("user_id", None)
    assert quick == (command_data(REGISTRY, "RegisterUser", body), chosen)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"email": "a@example.com"}',  # missing name
        b'{"email": "a@example.com", "name": "Ann", "nick": "A"}',  # unknown field
        b'{"email": "a@example.com", "name": "' + b"n" * 201 + b'"}',  # over maxLength
        b'{"email": 5, "name": "Ann"}',
        b'{"email": "a@example.com", "name": "Ann", "user_id": 7}',
        b'{"email": "a@example.com", "name": "Ann", "locale": NaN}',
        b'{"email": "a@example.com", "name": "A\\u0000nn"}',  # escapes go the long way
        b'{"email": "a@example.com", "name": "\xff"}',
        b'\xef\xbb\xbf{"email": "a@example.com", "name": "Ann"}',
        b'{"email": "a@example.com", "name": "Ann"} []',
        b"[]",
    ],
)
def test_anything_else_is_left_to_the_full_rules(raw: bytes) -> None:
    assert quick_command_data(REGISTRY, "RegisterUser", raw, "user_id") is None


def test_a_schema_it_does_not_cover_is_left_to_the_full_rules() -> None:
    raw = b'{"channels": [{"channel": "email", "address": "a@example.com"}]}'
    assert quick_command_data(REGISTRY, "SetNotificationPreferences", raw, None) is None
