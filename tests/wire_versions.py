"""Test helper: records as a writer of an older schema version put them on the wire.

`multi_version_names` lists every schema with more than one version (from the registry, so a
new version is picked up without editing a test). `sample` makes a record that fits one
version; `encode_as` writes it in that version's single-object encoding, as an old release
did; `as_latest` is the same record in the latest version's shape (each field added since at
its default): what every reader should see when it decodes the old bytes.
"""

from __future__ import annotations

from datetime import UTC, datetime
from io import BytesIO
from typing import Any

from fastavro import schemaless_writer

from aggregates.registry import COMMANDS
from projections.catalog import PROJECTIONS
from schemas.codec import MAGIC
from schemas.registry import SchemaVersion, default_registry
from schemas.tracking_plan import GENERIC_TYPE

SAMPLE_TIME = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
PRIMITIVES: dict[str, Any] = {"long": 7, "int": 3, "double": 1.5, "float": 2.5, "boolean": True}
# String fields whose value a consumer checks: the rest get "<field>-1". The one user acts.
STRINGS = {
    "email": "ada@example.com",
    "address": "ada@example.com",
    "data": "{}",
    "template": "welcome",
    "role": "member",
    "locale": "en",
    "owner_id": "user-1",
    "start": "22:00",
    "end": "07:00",
    "timezone": "UTC",
}


def multi_version_names() -> list[str]:
    registry = default_registry()
    return [name for name in registry.names() if len(registry.versions(name)) > 1]


def older_versions(name: str) -> list[SchemaVersion]:
    return default_registry().versions(name)[:-1]


def logical_topic(name: str) -> str:
    """The topic a schema's records travel on: commands on `commands`, anything else on the
    topic of the catalog projection that reads it."""
    if default_registry().latest(name).kind == "commands":
        return "commands"
    topics = {p.topic for p in PROJECTIONS.values() if p.handles(name)}
    assert len(topics) == 1, f"{name} is read from {topics or 'no topic'} by the catalog"
    return topics.pop()


def encode_as(schema: SchemaVersion, record: dict[str, Any]) -> bytes:
    """`record` in `schema`'s single-object encoding (the codec only writes the latest)."""
    out = BytesIO()
    out.write(MAGIC)
    out.write(schema.fingerprint)
    schemaless_writer(out, schema.parsed, record)
    return out.getvalue()


def sample(schema: SchemaVersion, aggregate_id: str) -> dict[str, Any]:
    """A record of `schema` with an envelope a consumer accepts and made-up data: optional
    envelope fields at their defaults, every data field with a value."""
    record: dict[str, Any] = _value(schema.raw, "")
    data = next(f["type"] for f in schema.raw["fields"] if f["name"] == "data")
    record["data"] = _value(data, "data", defaults=False)
    name, fields = schema.name, {f["name"] for f in schema.raw["fields"]}
    if schema.kind == "tracking":
        record["type"] = "sample.clicked" if name == GENERIC_TYPE else name
        return record
    if schema.kind == "commands":
        record.update(aggregate_type=COMMANDS[name].aggregate_type, actor=aggregate_id)
    else:
        record.update(aggregate_type=name.split(".")[0], aggregate_version=1)
    record.update(type=name, aggregate_id=aggregate_id)
    assert set(record) == fields
    return record


def as_latest(name: str, record: dict[str, Any]) -> dict[str, Any]:
    """`record` as the latest version of `name` reads it: added fields at their defaults."""
    resolved: dict[str, Any] = _with_defaults(default_registry().latest(name).raw, record)
    return resolved


def _with_defaults(schema: dict[str, Any], record: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for field in schema["fields"]:
        kind, key = field["type"], field["name"]
        if key not in record:
            out[key] = field["default"]
        elif isinstance(kind, dict) and kind.get("type") == "record":
            out[key] = _with_defaults(kind, record[key])
        else:
            out[key] = record[key]
    return out


def _value(schema: Any, field: str, *, defaults: bool = True) -> Any:
    if isinstance(schema, list):  # a union: its first branch that holds a value
        return _value(next((b for b in schema if b != "null"), "null"), field, defaults=defaults)
    if isinstance(schema, str):
        if schema == "string":
            return STRINGS.get(field, f"{field}-1")
        return None if schema == "null" else PRIMITIVES[schema]
    if schema.get("logicalType") == "timestamp-millis":
        return SAMPLE_TIME
    match schema["type"]:
        case "record":
            return {
                f["name"]: f["default"]
                if defaults and "default" in f
                else _value(f["type"], f["name"], defaults=defaults)
                for f in schema["fields"]
            }
        case "array":
            return [_value(schema["items"], field, defaults=defaults)]
        case "map":
            return {"key": _value(schema["values"], field, defaults=defaults)}
        case "enum":
            return schema["symbols"][0]
        case kind:
            return _value(kind, field, defaults=defaults)
