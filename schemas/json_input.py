"""Checks JSON input against an Avro record schema and converts it to an Avro datum.

Errors carry JSON pointers (`/channels/0/address`) so that HTTP answers can name the field.
Unknown fields are rejected rather than dropped, since a typo would otherwise lose data.
Strings and arrays are bounded where the schema says so (`maxLength`, `maxItems`: extra
attributes that Avro keeps and ignores), so oversized input is refused before it is stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

_INT_RANGE = {"int": 2**31, "long": 2**63}


@dataclass(frozen=True)
class FieldError:
    pointer: str
    reason: str


class InvalidInput(ValueError):
    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__("; ".join(f"{e.pointer or '/'}: {e.reason}" for e in errors))
        self.errors = errors


def from_json(schema: dict[str, Any], value: Any) -> Any:
    """Convert `value` to match the parsed (fastavro) schema, or raise InvalidInput."""
    errors: list[FieldError] = []
    result = _convert(schema, value, "", errors)
    if errors:
        raise InvalidInput(errors)
    return result


def _convert(schema: Any, value: Any, at: str, errors: list[FieldError]) -> Any:
    if isinstance(schema, list):
        return _union(schema, value, at, errors)
    kind = schema if isinstance(schema, str) else schema["type"]
    if isinstance(schema, dict) and isinstance(kind, (dict, list)):
        return _convert(kind, value, at, errors)
    if kind == "record":
        return _record(schema, value, at, errors)
    if kind == "array":
        return _array(schema, value, at, errors)
    if kind == "map":
        return _map(schema, value, at, errors)
    if kind == "string" and isinstance(schema, dict) and "maxLength" in schema:
        return _bounded_string(schema["maxLength"], value, at, errors)
    if kind == "enum":
        if value not in schema["symbols"]:
            errors.append(FieldError(at, f"must be one of {', '.join(schema['symbols'])}"))
        return value
    return _primitive(kind, value, at, errors)


def _record(schema: dict[str, Any], value: Any, at: str, errors: list[FieldError]) -> Any:
    if not isinstance(value, dict):
        errors.append(FieldError(at, "must be an object"))
        return None
    known = {f["name"] for f in schema["fields"]}
    errors.extend(FieldError(f"{at}/{k}", "unknown field") for k in value if k not in known)
    out: dict[str, Any] = {}
    for field in schema["fields"]:
        name, pointer = field["name"], f"{at}/{field['name']}"
        if name in value:
            out[name] = _convert(field["type"], value[name], pointer, errors)
        elif "default" in field:
            out[name] = field["default"]
        else:
            errors.append(FieldError(pointer, "is required"))
    return out


def _array(schema: dict[str, Any], value: Any, at: str, errors: list[FieldError]) -> Any:
    if not isinstance(value, list):
        errors.append(FieldError(at, "must be an array"))
        return None
    if len(value) > schema.get("maxItems", len(value)):
        errors.append(FieldError(at, f"must hold at most {schema['maxItems']} items"))
        return None
    return [_convert(schema["items"], v, f"{at}/{i}", errors) for i, v in enumerate(value)]


def _map(schema: dict[str, Any], value: Any, at: str, errors: list[FieldError]) -> Any:
    if not isinstance(value, dict):
        errors.append(FieldError(at, "must be an object"))
        return None
    return {k: _convert(schema["values"], v, f"{at}/{k}", errors) for k, v in value.items()}


def _union(branches: list[Any], value: Any, at: str, errors: list[FieldError]) -> Any:
    if value is None:
        if "null" not in branches:
            errors.append(FieldError(at, "must not be null"))
        return None
    for branch in (b for b in branches if b != "null"):
        attempt: list[FieldError] = []
        result = _convert(branch, value, at, attempt)
        if not attempt:
            return result
        last = attempt
    errors.extend(last)
    return None


def _bounded_string(longest: int, value: Any, at: str, errors: list[FieldError]) -> Any:
    if isinstance(value, str) and len(value) > longest:
        errors.append(FieldError(at, f"must be at most {longest} characters"))
        return None
    return _primitive("string", value, at, errors)


def _primitive(kind: str, value: Any, at: str, errors: list[FieldError]) -> Any:
    ok = {
        "null": value is None,
        "boolean": isinstance(value, bool),
        "string": isinstance(value, str),
        "int": _is_int(value, "int"),
        "long": _is_int(value, "long"),
        "float": isinstance(value, (int, float)) and not isinstance(value, bool),
        "double": isinstance(value, (int, float)) and not isinstance(value, bool),
    }.get(kind)
    if ok is None:
        errors.append(FieldError(at, f"type {kind} cannot be given as JSON"))
    elif not ok:
        errors.append(FieldError(at, f"must be {_ARTICLE.get(kind, 'a ' + kind)}"))
    return value


def _is_int(value: Any, kind: str) -> bool:
    bound = _INT_RANGE[kind]
    return isinstance(value, int) and not isinstance(value, bool) and -bound <= value < bound


_ARTICLE = {
    "null": "null",
    "boolean": "a boolean",
    "string": "a string",
    "int": "an integer",
    "long": "an integer",
    "float": "a number",
    "double": "a number",
}
