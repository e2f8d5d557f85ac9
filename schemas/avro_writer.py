"""Avro binary bodies written by a function generated once per schema; pure.

fastavro interprets the schema on every call, which costs more than the encoding itself for
the small records of the tracking plan. `compile_writer` walks the parsed schema once and
generates straight-line Python that only appends bytes, as dataclasses generates `__init__`:
one record then costs a few dictionary reads, `str.encode`s and varints. A record gives the
same bytes as with fastavro's schemaless_writer (tests/unit/test_avro_writer.py holds them
equal). Covered: records, strings, ints, longs (timestamp-millis from an aware datetime or
an int), booleans, doubles, arrays, maps and unions of null and one other type; for any other
schema it returns None and the caller keeps fastavro. Records are written as they come: the
caller has checked them.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from datetime import datetime
from itertools import count
from typing import Any, cast

from schemas.timestamps import epoch_ms

BodyWriter = Callable[[Any], bytes]

_BYTE = [bytes((n,)) for n in range(0x80)]
_SMALL_LENGTH = [zigzag for zigzag in _BYTE[0::2]]  # a length of 0..63 is one byte
_INDEX = {0: b"\x00", 1: b"\x02"}  # a union branch index, as a zigzag varint


def zigzag_varint(n: int) -> bytes:
    """An Avro int or long: zigzag, then 7 bits a byte, least significant first."""
    n = (n << 1) ^ (n >> 63)
    if n < 0x80:
        return _BYTE[n]
    if n < 0x4000:
        return bytes(((n & 0x7F) | 0x80, n >> 7))
    if n >> 35 and not n >> 42:  # six bytes: epoch milliseconds from 1971 to 2039
        return bytes((
            (n & 0x7F) | 0x80, (n >> 7 & 0x7F) | 0x80, (n >> 14 & 0x7F) | 0x80,
            (n >> 21 & 0x7F) | 0x80, (n >> 28 & 0x7F) | 0x80, n >> 35,
        ))  # fmt: skip
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _millis(moment: datetime | int) -> bytes:
    return zigzag_varint(moment if isinstance(moment, int) else epoch_ms(moment))


_GLOBALS = {
    "_varint": zigzag_varint,
    "_millis": _millis,
    "_double": struct.Struct("<d").pack,
    "_length": _SMALL_LENGTH,
}


def compile_writer(schema: Any, label: str = "schema", prefix: bytes = b"") -> BodyWriter | None:
    """A function encoding one datum of the parsed `schema` after `prefix` (a header), or
    None if the schema is not covered."""
    lines = ["def write(datum):", "    parts = [prefix]", "    put = parts.append"]
    if not _Emitter(lines).emit(schema, "datum", 1):
        return None
    lines.append("    return b''.join(parts)")
    namespace = {**_GLOBALS, "prefix": prefix}
    exec(compile("\n".join(lines), f"<avro writer of {label}>", "exec"), namespace)
    return cast(BodyWriter, namespace["write"])


class _Emitter:
    """Appends the statements writing one value; False for a schema it does not cover."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines
        self.names = count()

    def emit(self, schema: Any, value: str, depth: int) -> bool:
        if isinstance(schema, list):
            return self._union(schema, value, depth)
        kind = schema if isinstance(schema, str) else schema["type"]
        if isinstance(kind, (dict, list)):
            return self.emit(kind, value, depth)
        if kind == "record":
            return self._record(schema["fields"], value, depth)
        if kind == "array":
            return self._array(schema["items"], value, depth)
        if kind == "map":
            return self._map(schema["values"], value, depth)
        if isinstance(schema, dict) and schema.get("logicalType") == "timestamp-millis":
            return kind == "long" and self._line(depth, f"put(_millis({value}))")
        statement = _PRIMITIVES.get(kind)
        return statement is not None and self._line(depth, statement.format(value=value))

    def _record(self, fields: list[dict[str, Any]], value: str, depth: int) -> bool:
        record = self._bind(value, depth)
        return all(self.emit(f["type"], f"{record}[{f['name']!r}]", depth) for f in fields)

    def _array(self, items: Any, value: str, depth: int) -> bool:
        array, item = self._bind(value, depth), f"item{next(self.names)}"
        # one block holding every item, then the empty block that ends the array
        self._line(depth, f"if {array}:")
        self._line(depth + 1, f"put(_varint(len({array})))")
        self._line(depth + 1, f"for {item} in {array}:")
        covered = self.emit(items, item, depth + 2)
        return covered and self._line(depth, "put(b'\\x00')")

    def _map(self, values: Any, value: str, depth: int) -> bool:
        mapping, n = self._bind(value, depth), next(self.names)
        # one block holding every entry, then the empty block that ends the map
        self._line(depth, f"if {mapping}:")
        self._line(depth + 1, f"put(_varint(len({mapping})))")
        self._line(depth + 1, f"for key{n}, item{n} in {mapping}.items():")
        self.emit("string", f"key{n}", depth + 2)
        covered = self.emit(values, f"item{n}", depth + 2)
        return covered and self._line(depth, "put(b'\\x00')")

    def _union(self, branches: list[Any], value: str, depth: int) -> bool:
        if len(branches) != 2 or "null" not in branches:
            return False
        null = branches.index("null")
        union = self._bind(value, depth)
        self._line(depth, f"if {union} is None:")
        self._line(depth + 1, f"put({_INDEX[null]!r})")
        self._line(depth, "else:")
        self._line(depth + 1, f"put({_INDEX[1 - null]!r})")
        return self.emit(branches[1 - null], union, depth + 1)

    def _bind(self, value: str, depth: int) -> str:
        name = f"value{next(self.names)}"
        self._line(depth, f"{name} = {value}")
        return name

    def _line(self, depth: int, statement: str) -> bool:
        self.lines.extend("    " * depth + line for line in statement.split("\n"))
        return True


_PRIMITIVES = {
    "string": "raw = {value}.encode()\nsize = len(raw)\n"
    "put(_length[size] if size < 64 else _varint(size))\nput(raw)",
    "int": "put(_varint({value}))",
    "long": "put(_varint({value}))",
    "boolean": "put(b'\\x01' if {value} else b'\\x00')",
    "double": "put(_double({value}))",
    "null": "pass",
}
