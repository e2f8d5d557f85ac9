"""Avro record schemas as msgspec Structs, where msgspec's rules and schemas.json_input's agree.

A Struct decodes JSON text and checks it in one pass, in C. It is built only for a record
whose fields are all covered: strings (with `maxLength`), ints, longs, booleans, each
possibly in a union with null. Unknown fields are refused, as json_input refuses them, and
a missing field takes its Avro default. A value json_input would refuse, msgspec refuses
too (its error then is not the one to answer: callers check refused text with json_input,
which names every bad field). Pure.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

Limit = msgspec.Meta
_INT_BOUND = {"int": 2**31, "long": 2**63}


def data_struct(name: str, schema: Any, extra: tuple[Any, ...] = ()) -> type | None:
    """The Struct of a record schema, plus `extra` msgspec fields; None if not covered."""
    if not isinstance(schema, dict) or schema.get("type") != "record":
        return None
    fields: list[Any] = []
    for field in schema["fields"]:
        kind = field_kind(field["type"])
        if kind is None:
            return None
        default = (field["default"],) if "default" in field else ()
        fields.append((field["name"], kind, *default))
    fields += extra
    return msgspec.defstruct(f"Data_{name}", fields, forbid_unknown_fields=True, kw_only=True)


def field_kind(schema: Any) -> Any:
    """The msgspec type of a field, or None when schemas.json_input's rules may differ."""
    if isinstance(schema, list):
        if len(schema) != 2 or "null" not in schema:
            return None
        other = field_kind(schema[1 - schema.index("null")])
        return None if other is None else other | None
    kind = schema if isinstance(schema, str) else schema.get("type")
    if kind == "string":
        longest = schema.get("maxLength") if isinstance(schema, dict) else None
        return str if longest is None else Annotated[str, Limit(max_length=longest)]
    if kind in _INT_BOUND:
        bound = _INT_BOUND[kind]
        return Annotated[int, Limit(ge=-bound, le=bound - 1)]
    if kind == "boolean":
        return bool
    return None
