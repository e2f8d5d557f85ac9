"""Building blocks of the document's JSON Schemas: ids, times, closed objects, read-model rows.

A read-model row is described from the projection's own Table declaration (column names,
SQL types, NOT NULL), so a column added to a read model shows without an edit here.
"""

from __future__ import annotations

from typing import Any

from gateway.openapi.model import JsonSchema
from projections.model import Table
from schemas.json_schema import json_schema
from schemas.registry import default_registry

# The gateway's id rule (gateway.dispatch.checked_id), as a JSON Schema pattern.
ID = {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$"}
POSITION = {"type": "string", "pattern": "^[0-9]{1,9}-[0-9]{1,18}$", "examples": ["3-1542"]}
EXAMPLE_IDS = {"user": "ada", "workspace": "engines"}  # rows the contract test makes first
TIME = {"type": "string", "format": "date-time"}
_SQL_TYPES = {"text": "string", "bigint": "integer", "integer": "integer", "boolean": "boolean",
              "double": "number"}  # fmt: skip


def ref(name: str) -> JsonSchema:
    """A component schema (gateway.openapi.shapes.SCHEMAS), by name."""
    return {"$ref": f"#/components/schemas/{name}"}


def obj(required: dict[str, Any], optional: dict[str, Any] | None = None) -> JsonSchema:
    """A closed object: `required` properties, and `optional` ones."""
    properties = {**required, **(optional or {})}
    out: JsonSchema = {"type": "object", "properties": properties, "additionalProperties": False}
    return out | ({"required": list(required)} if required else {})


def row(table: Table, only: tuple[str, ...] | None = None, **jsonb: JsonSchema) -> JsonSchema:
    """A read-model row: each column by its SQL type, nullable unless NOT NULL; `jsonb` says
    what a jsonb column holds (else anything)."""
    columns = [(n, kind) for n, kind in table.columns if only is None or n in only]
    return obj({name: _column(kind, jsonb.get(name)) for name, kind in columns})


def _column(kind: str, jsonb: JsonSchema | None) -> JsonSchema:
    base = kind.split()[0]
    if base == "timestamptz":
        schema: JsonSchema = dict(TIME)
    elif base == "jsonb":
        schema = jsonb or {}
    else:
        schema = {"type": _SQL_TYPES[base]}
    return schema if "NOT NULL" in kind else nullable(schema)


def nullable(schema: JsonSchema) -> JsonSchema:
    if not schema:
        return schema  # anything, null included
    if isinstance(schema.get("type"), str):
        return schema | {"type": [schema["type"], "null"]}
    return {"anyOf": [schema, {"type": "null"}]}


def command_data(command: str) -> JsonSchema:
    """The JSON Schema of a command's `data`, from its latest Avro schema."""
    parsed = default_registry().latest(command).parsed
    described = json_schema(next(f["type"] for f in parsed["fields"] if f["name"] == "data"))
    assert isinstance(described, dict), command
    return described
