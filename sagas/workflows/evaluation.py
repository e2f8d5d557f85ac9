"""Evaluating parsed expressions against one event; pure, rows come through `Lookups`."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol, assert_never

from sagas.workflows.expressions import (
    Condition,
    EventRef,
    Joined,
    LookupRef,
    Node,
    SettingRef,
    Text,
    describe,
)

Row = Mapping[str, Any]


class Lookups(Protocol):
    """Read-model rows by id, with expressions.USER_FIELDS / WORKSPACE_FIELDS; None if unknown."""

    def user(self, user_id: str) -> Row | None: ...
    def workspace(self, workspace_id: str) -> Row | None: ...


class Unresolved(Exception):
    """An expression that has no value for this event (a row not found, a setting unset)."""


@dataclass(frozen=True)
class Scope:
    """What expressions of one event may read."""

    event: Mapping[str, Any]
    lookups: Lookups
    settings: Mapping[str, str | None]


def evaluate(node: Node, scope: Scope) -> Any:
    """The node's JSON-ready value; raises Unresolved when it has none for this event."""
    match node:
        case Text(value):
            return value
        case EventRef(path):
            return json_ready(_walk(scope.event, path))
        case SettingRef(name):
            return scope.settings.get(name)
        case LookupRef():
            return json_ready(_row(node, scope).get(node.field))
        case Joined(parts):
            return "".join(_text(part, scope) for part in parts)
        case _:
            assert_never(node)


def holds(condition: Condition, scope: Scope) -> bool:
    equal = evaluate(condition.left, scope) == evaluate(condition.right, scope)
    return equal if condition.operator == "==" else not equal


def _walk(event: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = event
    for depth, key in enumerate(path):
        if not isinstance(value, Mapping) or key not in value:
            raise Unresolved(f"the event has no {'.'.join(path[: depth + 1])}")
        value = value[key]
    return value


def _key(node: Node, scope: Scope, what: str) -> str:
    key = evaluate(node, scope)
    if not isinstance(key, str) or not key:
        raise Unresolved(f"{what} id is {json.dumps(key)}")
    return key


def _row(node: LookupRef, scope: Scope) -> Row:
    key = _key(node.key, scope, "workspace" if node.kind == "owner" else node.kind)
    if node.kind == "user":
        return _found(scope.lookups.user(key), f"user {key!r} not found")
    workspace = _found(scope.lookups.workspace(key), f"workspace {key!r} not found")
    if node.kind == "workspace":
        return workspace
    owner = workspace.get("owner_id")
    return _found(scope.lookups.user(str(owner)), f"user {owner!r} (owner of {key!r}) not found")


def _found(row: Row | None, reason: str) -> Row:
    if row is None:
        raise Unresolved(reason)
    return row


def _text(node: Node, scope: Scope) -> str:
    value = evaluate(node, scope)
    if value is None:
        raise Unresolved(f"{describe(node)} is unset")
    return value if isinstance(value, str) else json.dumps(value)


def json_ready(value: Any) -> Any:
    """Datetimes (Avro timestamps, timestamptz) as ISO-8601 UTC; containers recursively."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    if isinstance(value, Mapping):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_ready(v) for v in value]
    return value
