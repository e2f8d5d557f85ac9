"""Whether a datum certainly matches an Avro schema, by a function generated once per schema; pure.

fastavro's `validate` interprets the schema on every call, which costs more than writing the
record. `compile_checker` walks the parsed schema once, as schemas.avro_writer does, and
generates straight-line `isinstance` tests. It is never looser than fastavro and sometimes
stricter (exact builtin types, every field present, no tuple notation): True means fastavro
would accept the datum and the generated writer can write it; False means only "not sure",
and the caller asks fastavro, whose errors name the offending fields. Covered: the schemas
the generated writer covers; for any other it returns None.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from itertools import count
from typing import Any, cast

Checker = Callable[[Any], bool]

_RANGES = {"int": 2**31, "long": 2**63}


def compile_checker(schema: Any, label: str = "schema") -> Checker | None:
    """A function telling whether one datum of the parsed `schema` surely matches it, or None
    if the schema is not covered."""
    lines = ["def check(datum):"]
    if not _Emitter(lines).emit(schema, "datum", 1):
        return None
    lines.append("    return True")
    namespace: dict[str, Any] = {"datetime": datetime}
    exec(compile("\n".join(lines), f"<avro checker of {label}>", "exec"), namespace)
    return cast(Checker, namespace["check"])


class _Emitter:
    """Appends the statements returning False unless one value surely matches its schema."""

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
        if kind in ("array", "map"):
            return self._collection(schema, kind, value, depth)
        if isinstance(schema, dict) and schema.get("logicalType") == "timestamp-millis":
            return kind == "long" and self._timestamp(value, depth)
        test = _PRIMITIVES.get(kind)
        if test is None:
            return False
        return self._require(depth, test.format(value=value, bound=_RANGES.get(kind, 0)))

    def _record(self, fields: list[dict[str, Any]], value: str, depth: int) -> bool:
        record = self._bind(value, depth)
        # fastavro refuses a record naming another type under "-type"; any "-type" is unsure
        self._require(depth, f"type({record}) is dict and '-type' not in {record}")
        for f in fields:
            self._require(depth, f"{f['name']!r} in {record}")
        return all(self.emit(f["type"], f"{record}[{f['name']!r}]", depth) for f in fields)

    def _collection(self, schema: dict[str, Any], kind: str, value: str, depth: int) -> bool:
        bound, n = self._bind(value, depth), next(self.names)
        if kind == "array":
            self._require(depth, f"type({bound}) is list")
            self._line(depth, f"for item{n} in {bound}:")
            return self.emit(schema["items"], f"item{n}", depth + 1)
        self._require(depth, f"type({bound}) is dict")
        self._line(depth, f"for key{n}, item{n} in {bound}.items():")
        self._require(depth + 1, f"type(key{n}) is str")
        return self.emit(schema["values"], f"item{n}", depth + 1)

    def _union(self, branches: list[Any], value: str, depth: int) -> bool:
        if len(branches) != 2 or "null" not in branches:
            return False
        union = self._bind(value, depth)
        self._line(depth, f"if {union} is not None:")
        return self.emit(branches[1 - branches.index("null")], union, depth + 1)

    def _timestamp(self, value: str, depth: int) -> bool:
        moment = self._bind(value, depth)
        aware = f"type({moment}) is datetime and {moment}.tzinfo is not None"
        millis = _PRIMITIVES["long"].format(value=moment, bound=_RANGES["long"])
        return self._require(depth, f"({aware}) or ({millis})")

    def _require(self, depth: int, test: str) -> bool:
        return self._line(depth, f"if not ({test}):\n    return False")

    def _bind(self, value: str, depth: int) -> str:
        name = f"value{next(self.names)}"
        self._line(depth, f"{name} = {value}")
        return name

    def _line(self, depth: int, statement: str) -> bool:
        self.lines.extend("    " * depth + line for line in statement.split("\n"))
        return True


_PRIMITIVES = {
    "string": "type({value}) is str",
    "int": "type({value}) is int and -{bound} <= {value} < {bound}",
    "long": "type({value}) is int and -{bound} <= {value} < {bound}",
    "boolean": "{value} is True or {value} is False",
    "double": "type({value}) is float or type({value}) is int",
    "float": "type({value}) is float or type({value}) is int",
    "null": "{value} is None",
}
