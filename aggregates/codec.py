"""Convert frozen dataclasses to and from plain JSON/Avro-like data, driven by type hints.

Nested dataclasses become dicts and tuples become lists; decoding reverses both and
checks every value against its annotation, so `from_data(type(x), to_data(x)) == x`.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from functools import cache
from typing import TYPE_CHECKING, Any, TypeVar, cast

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

T = TypeVar("T", bound="DataclassInstance")

_SCALARS: tuple[type, ...] = (str, int, float, bool)
_PLAIN = frozenset({*_SCALARS, type(None)})  # exact types, returned as they are


class DataError(ValueError):
    """The data does not fit the dataclass it is decoded into."""


def to_data(obj: DataclassInstance) -> dict[str, Any]:
    return {name: _encode(getattr(obj, name)) for name in _field_names(type(obj))}


def from_data(cls: type[T], data: object) -> T:
    return _decode_dataclass(cls, data, cls.__name__)


def _encode(value: object) -> object:
    kind = type(value)
    if kind in _PLAIN:  # most values: checked first, as the saga's hot path encodes many
        return value
    if dataclasses.is_dataclass(kind):  # an instance; a dataclass type itself stays as it is
        return to_data(cast("DataclassInstance", value))
    if isinstance(value, tuple | list):
        return [_encode(item) for item in value]
    if isinstance(value, Mapping):
        return {key: _encode(item) for key, item in value.items()}
    return value


@cache
def _field_names(cls: type[DataclassInstance]) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls))


@cache
def _required(cls: type[DataclassInstance]) -> frozenset[str]:
    return frozenset(f.name for f in dataclasses.fields(cls) if _is_required(f))


@cache
def _field_types(cls: type[DataclassInstance]) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls) if f.init}


def _decode_dataclass(cls: type[T], data: object, path: str) -> T:
    if not isinstance(data, Mapping):
        raise DataError(f"{path}: expected an object, got {type(data).__name__}")
    field_types = _field_types(cls)
    unknown = sorted(str(key) for key in set(data) - set(field_types))
    if unknown:
        raise DataError(f"{path}: unknown fields {unknown}")
    missing = sorted(_required(cls) - set(data))
    if missing:
        raise DataError(f"{path}: missing fields {missing}")
    kwargs = {
        name: _decode(field_types[name], value, f"{path}.{name}") for name, value in data.items()
    }
    return cls(**kwargs)


def _is_required(f: dataclasses.Field[Any]) -> bool:
    return f.init and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING


def _decode(hint: Any, value: object, path: str) -> object:
    if type(value) is hint and hint in _PLAIN:  # exactly the scalar asked for: nothing to do
        return value
    origin, args = _shape(hint)
    if origin is types.UnionType or origin is typing.Union:
        return _decode_union(args, value, path)
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        items = _expect(list, value, path)
        return tuple(_decode(args[0], item, f"{path}[{i}]") for i, item in enumerate(items))
    if origin is list:
        items = _expect(list, value, path)
        return [_decode(args[0], item, f"{path}[{i}]") for i, item in enumerate(items)]
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return _decode_dataclass(hint, value, path)
    if hint is type(None):
        return _expect(type(None), value, path)
    if hint in _SCALARS:
        return _decode_scalar(hint, value, path)
    raise TypeError(f"{path}: unsupported annotation {hint!r}")


@cache
def _shape(hint: Any) -> tuple[Any, tuple[Any, ...]]:
    return typing.get_origin(hint), typing.get_args(hint)


def _decode_union(args: tuple[Any, ...], value: object, path: str) -> object:
    if value is None and type(None) in args:
        return None
    errors = []
    for arg in args:
        if arg is type(None):
            continue
        try:
            return _decode(arg, value, path)
        except DataError as error:
            errors.append(str(error))
    raise DataError("; ".join(errors))


def _decode_scalar(hint: type, value: object, path: str) -> object:
    # bool is a subclass of int, yet `true` must never decode as 1 (nor 1 as `true`).
    if isinstance(value, bool) != (hint is bool):
        raise DataError(f"{path}: expected {hint.__name__}, got {type(value).__name__}")
    if hint is float and isinstance(value, int):
        return float(value)
    return _expect(hint, value, path)


def _expect(kind: type, value: object, path: str) -> Any:
    if not isinstance(value, kind):
        raise DataError(f"{path}: expected {kind.__name__}, got {type(value).__name__}")
    return value
