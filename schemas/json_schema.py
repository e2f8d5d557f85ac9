"""JSON Schema (2020-12, as OpenAPI 3.1 uses it) of the JSON that schemas.json_input accepts.

`json_schema(avro)` describes, for a parsed (fastavro) Avro schema, exactly the values that
`from_json` converts without error: records are closed objects whose fields without a
default are required, unions with null are nullable, strings and arrays keep the bounds the
schema declares (`maxLength`, `maxItems`), ints and longs their ranges, and types that JSON
cannot carry (bytes, fixed) accept nothing. A unit test holds the two to agreement.
"""

from __future__ import annotations

from typing import Any

JsonSchema = dict[str, Any] | bool
_INT_BITS = {"int": 31, "long": 63}
_PRIMITIVE = {"null": "null", "boolean": "boolean", "string": "string", "float": "number",
              "double": "number"}  # fmt: skip


def json_schema(schema: Any) -> JsonSchema:
    """The JSON Schema of the JSON input `from_json(schema, ...)` accepts."""
    if isinstance(schema, list):
        return _union(schema)
    kind = schema if isinstance(schema, str) else schema["type"]
    if isinstance(schema, dict) and isinstance(kind, (dict, list)):
        return json_schema(kind)
    if kind == "record":
        return _record(schema)
    if kind == "array":
        items = {"type": "array", "items": json_schema(schema["items"])}
        return items | ({"maxItems": schema["maxItems"]} if "maxItems" in schema else {})
    if kind == "map":
        return {"type": "object", "additionalProperties": json_schema(schema["values"])}
    if kind == "enum":
        return {"type": "string", "enum": list(schema["symbols"])}
    if kind == "string" and isinstance(schema, dict) and "maxLength" in schema:
        return {"type": "string", "maxLength": schema["maxLength"]}
    if kind in _INT_BITS:
        bound = 2 ** _INT_BITS[kind]
        return {"type": "integer", "minimum": -bound, "maximum": bound - 1}
    if kind in _PRIMITIVE:
        return {"type": _PRIMITIVE[kind]}
    return False  # bytes, fixed, a named reference: from_json refuses them all


def _record(schema: dict[str, Any]) -> JsonSchema:
    properties: dict[str, JsonSchema] = {}
    for field in schema["fields"]:
        described = json_schema(field["type"])
        if isinstance(described, dict):
            described = _documented(described, field)
        properties[field["name"]] = described
    out: dict[str, Any] = {"type": "object", "properties": properties}
    required = [f["name"] for f in schema["fields"] if "default" not in f]
    if required:
        out["required"] = required
    out["additionalProperties"] = False  # from_json refuses unknown fields: a typo loses data
    return out


def _documented(described: dict[str, Any], field: dict[str, Any]) -> dict[str, Any]:
    extra = {key: field[key] for key in ("doc", "default") if key in field}
    if "doc" in extra:
        extra["description"] = extra.pop("doc")
    return described | extra


def _union(branches: list[Any]) -> JsonSchema:
    """Null, when a branch, is accepted; else the first branch that fits, as in from_json."""
    nullable = "null" in branches
    options = [json_schema(b) for b in branches if b != "null"]
    if len(options) == 1 and isinstance(options[0], dict) and _single_type(options[0]):
        only = dict(options[0])
        only["type"] = [only["type"], "null"] if nullable else only["type"]
        return only
    if nullable:
        options.append({"type": "null"})
    return {"anyOf": options}


def _single_type(schema: dict[str, Any]) -> bool:
    """A schema whose `type` can take "null" beside it without changing what else it says."""
    return isinstance(schema.get("type"), str) and "enum" not in schema
