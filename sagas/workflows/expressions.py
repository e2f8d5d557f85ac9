"""The reference language of `infra/config/workflows.toml`, parsed once at start-up.

    expression := term ("~" term)*          "~" joins the terms as text
    term       := 'literal' | reference
    reference  := event.FIELD[.KEY...] | settings.NAME | LOOKUP(expression).FIELD
    LOOKUP     := user | workspace | owner   (owner(w) is the user row of w's owner)
    condition  := expression ("==" | "!=") expression

Parsing checks every name against the fields below, so a typo fails at start-up and not on
the first matching event. `evaluation` gives the parsed nodes their values.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, assert_never, cast

ENVELOPE_FIELDS = frozenset(
    {
        "event_id",
        "type",
        "aggregate_type",
        "aggregate_id",
        "aggregate_version",
        "occurred_at",
        "correlation_id",
        "causation_id",
        "actor",
        "data",
    }
)
SETTING_NAMES = ("app_name", "app_url", "ops_user_id")
USER_FIELDS = ("user_id", "email", "name", "locale", "status")
WORKSPACE_FIELDS = ("workspace_id", "name", "owner_id", "status")
LOOKUP_FIELDS: dict[str, tuple[str, ...]] = {
    "user": USER_FIELDS,
    "workspace": WORKSPACE_FIELDS,
    "owner": USER_FIELDS,
}

LookupKind = Literal["user", "workspace", "owner"]
Operator = Literal["==", "!="]


class ExpressionError(ValueError):
    """An expression that does not parse, or names something that does not exist."""


@dataclass(frozen=True)
class Text:
    value: str


@dataclass(frozen=True)
class EventRef:
    path: tuple[str, ...]


@dataclass(frozen=True)
class SettingRef:
    name: str


@dataclass(frozen=True)
class LookupRef:
    kind: LookupKind
    key: Node
    field: str


@dataclass(frozen=True)
class Joined:
    parts: tuple[Node, ...]


Node = Text | EventRef | SettingRef | LookupRef | Joined


@dataclass(frozen=True)
class Expression:
    source: str
    node: Node


@dataclass(frozen=True)
class Condition:
    source: str
    left: Node
    operator: Operator
    right: Node


_TOKEN = re.compile(r"\s*(?:('[^']*')|([A-Za-z_][A-Za-z0-9_]*)|(==|!=|[.()~]))")


def _tokens(source: str) -> list[str]:
    tokens: list[str] = []
    position = 0
    while position < len(source.rstrip()):
        found = _TOKEN.match(source, position)
        if found is None:
            raise ExpressionError(f"unexpected {source[position:].strip()!r}")
        tokens.append(next(group for group in found.groups() if group is not None))
        position = found.end()
    return tokens


class _Parser:
    def __init__(self, source: str) -> None:
        self.tokens = _tokens(source)
        self.index = 0

    def peek(self) -> str | None:
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def take(self, what: str) -> str:
        """The next token, described as `what` in the error when there is none."""
        token = self.peek()
        if token is None:
            raise ExpressionError(f"expected {what} at the end")
        self.index += 1
        return token

    def expect(self, literal: str) -> None:
        token = self.take(repr(literal))
        if token != literal:
            raise ExpressionError(f"expected {literal!r}, found {token!r}")

    def name(self) -> str:
        token = self.take("a name")
        if not token.isidentifier():
            raise ExpressionError(f"expected a name, found {token!r}")
        return token

    def expression(self) -> Node:
        parts = [self.term()]
        while self.peek() == "~":
            self.expect("~")
            parts.append(self.term())
        return parts[0] if len(parts) == 1 else Joined(tuple(parts))

    def term(self) -> Node:
        token = self.take("a term")
        if token.startswith("'"):
            return Text(token[1:-1])
        if token == "event":
            return self.event()
        if token == "settings":
            self.expect(".")
            return _setting(self.name())
        if token in LOOKUP_FIELDS:
            return self.lookup(cast(LookupKind, token))
        raise ExpressionError(f"unknown reference {token!r} (event, settings, user, ...)")

    def event(self) -> EventRef:
        self.expect(".")
        path = [self.name()]
        if path[0] not in ENVELOPE_FIELDS:
            raise ExpressionError(f"event has no field {path[0]!r}")
        while self.peek() == ".":
            self.expect(".")
            path.append(self.name())
        if len(path) > 1 and path[0] != "data":
            raise ExpressionError(f"event.{path[0]} has no fields")
        return EventRef(tuple(path))

    def lookup(self, kind: LookupKind) -> LookupRef:
        self.expect("(")
        key = self.expression()
        self.expect(")")
        if self.peek() != ".":
            raise ExpressionError(f"{kind}(...) is a row: name a field, e.g. {kind}(...).name")
        self.expect(".")
        field = self.name()
        if field not in LOOKUP_FIELDS[kind]:
            known = ", ".join(LOOKUP_FIELDS[kind])
            raise ExpressionError(f"{kind} rows have no field {field!r} (only {known})")
        return LookupRef(kind, key, field)

    def done(self) -> None:
        if self.peek() is not None:
            raise ExpressionError(f"unexpected {self.peek()!r}")


def _setting(name: str) -> SettingRef:
    if name not in SETTING_NAMES:
        raise ExpressionError(f"unknown setting {name!r} (only {', '.join(SETTING_NAMES)})")
    return SettingRef(name)


def parse_expression(source: str) -> Expression:
    parser = _Parser(source)
    node = parser.expression()
    parser.done()
    return Expression(source, node)


def parse_condition(source: str) -> Condition:
    parser = _Parser(source)
    left = parser.expression()
    operator = parser.take("== or !=")
    if operator not in ("==", "!="):
        raise ExpressionError(f"expected == or !=, found {operator!r}")
    right = parser.expression()
    parser.done()
    return Condition(source, left, cast(Operator, operator), right)


def describe(node: Node) -> str:
    """The node written back in the reference language (for messages)."""
    match node:
        case Text(value):
            return f"'{value}'"
        case EventRef(path):
            return "event." + ".".join(path)
        case SettingRef(name):
            return f"settings.{name}"
        case LookupRef(kind, key, field):
            return f"{kind}({describe(key)}).{field}"
        case Joined(parts):
            return " ~ ".join(describe(part) for part in parts)
        case _:
            assert_never(node)
