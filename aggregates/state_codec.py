"""Aggregate states to JSON text and back, for the command side's snapshots.

The JSON is what `aggregates.codec.to_data` makes of a state (field names, tuples as
lists), so a snapshot reads like an event's data. Both directions are compiled once per
state type from its type hints, because a takeover decodes every aggregate of a partition:
decoding checks every value as strictly as `codec.from_data` (no unknown or missing field,
`true` never an int, a tuple element of the wrong type refused) at a fraction of the cost.

Guarantees: `state_from_json(t, state_to_json(t, s)) == s` for every state `s` of aggregate
type `t`; any other text either decodes to a valid state of that type or raises
`codec.DataError`. A state type with an annotation this codec cannot carry fails at its
first use with TypeError, never with wrong data.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Callable
from functools import cache
from typing import Any

from aggregates.codec import DataError
from aggregates.registry import DECIDERS

Encoder = Callable[[Any], Any]
Decoder = Callable[[Any], Any]
_SCALARS: tuple[type, ...] = (str, int, float, bool)


def state_type(aggregate_type: str) -> type[Any]:
    """The dataclass holding the state of `aggregate_type` (KeyError if none decides it)."""
    return type(DECIDERS[aggregate_type].initial_state)


def state_to_json(aggregate_type: str, state: Any) -> str:
    """Compact JSON of `state`, a state of `aggregate_type`."""
    return json.dumps(_encoder(aggregate_type)(state), separators=(",", ":"))


def state_from_json(aggregate_type: str, text: str) -> Any:
    """The state of `aggregate_type` that `text` holds; DataError if it holds none."""
    if aggregate_type not in DECIDERS:
        raise DataError(f"no decider for aggregate type {aggregate_type!r}")
    try:
        data = json.loads(text)
    except (ValueError, TypeError) as error:
        raise DataError(f"{aggregate_type} state: not JSON ({error})") from None
    return _decoder(aggregate_type)(data)


@cache
def _encoder(aggregate_type: str) -> Encoder:
    return _compile_encoder(state_type(aggregate_type))


@cache
def _decoder(aggregate_type: str) -> Decoder:
    cls = state_type(aggregate_type)
    return _compile_decoder(cls, cls.__name__)


def _field_hints(cls: type[Any]) -> list[tuple[str, Any]]:
    if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
        raise TypeError(f"{cls!r} is not a dataclass")
    hints = typing.get_type_hints(cls)
    fields = dataclasses.fields(cls)
    if any(not f.init for f in fields):
        raise TypeError(f"{cls.__name__}: fields outside __init__ cannot be snapshotted")
    return [(f.name, hints[f.name]) for f in fields]


def _compile_encoder(hint: Any) -> Encoder:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        fields = [(name, _compile_encoder(h)) for name, h in _field_hints(hint)]
        return lambda obj: {name: encode(getattr(obj, name)) for name, encode in fields}
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        item = _compile_encoder(args[0])
        return lambda value: [item(v) for v in value]
    if origin is types.UnionType or origin is typing.Union:
        inner = _compile_encoder(_optional_of(hint, args))
        return lambda value: None if value is None else inner(value)
    if hint in _SCALARS:
        return _identity
    raise TypeError(f"unsupported annotation in an aggregate state: {hint!r}")


def _identity(value: Any) -> Any:
    return value


def _compile_decoder(hint: Any, path: str) -> Decoder:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return _dataclass_decoder(hint, path)
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        return _tuple_decoder(_compile_decoder(args[0], f"{path}[]"), path)
    if origin is types.UnionType or origin is typing.Union:
        inner = _compile_decoder(_optional_of(hint, args), path)
        return lambda value: None if value is None else inner(value)
    if hint in _SCALARS:
        return _scalar_decoder(hint, path)
    raise TypeError(f"unsupported annotation in an aggregate state: {hint!r}")


def _optional_of(hint: Any, args: tuple[Any, ...]) -> Any:
    """`X` of `X | None`: the only unions states use, and ones JSON decodes unambiguously."""
    others = [arg for arg in args if arg is not type(None)]
    if len(others) != 1 or len(args) != 2:
        raise TypeError(f"unsupported union in an aggregate state: {hint!r}")
    return others[0]


def _dataclass_decoder(cls: type[Any], path: str) -> Decoder:
    fields = [(name, _compile_decoder(h, f"{path}.{name}")) for name, h in _field_hints(cls)]
    names = frozenset(name for name, _ in fields)

    def decode(value: Any) -> Any:
        if type(value) is not dict:
            raise DataError(f"{path}: expected an object, got {type(value).__name__}")
        if value.keys() != names:
            unknown, missing = sorted(value.keys() - names), sorted(names - value.keys())
            raise DataError(f"{path}: unknown fields {unknown}, missing fields {missing}")
        return cls(*[field(value[name]) for name, field in fields])  # in field order

    return decode


def _tuple_decoder(item: Decoder, path: str) -> Decoder:
    def decode(value: Any) -> tuple[Any, ...]:
        if type(value) is not list:
            raise DataError(f"{path}: expected a list, got {type(value).__name__}")
        return tuple(item(v) for v in value)

    return decode


def _scalar_decoder(kind: type, path: str) -> Decoder:
    # JSON has one number type: a float field may arrive as an int, never a bool as either.
    accepted: tuple[type, ...] = (int, float) if kind is float else (kind,)

    def decode(value: Any) -> Any:
        if type(value) not in accepted:
            raise DataError(f"{path}: expected {kind.__name__}, got {type(value).__name__}")
        return float(value) if kind is float else value

    return decode
