"""Builds the OpenAPI 3.1 document from an app's route table and the routes' declarations.

Every Route and Mount of the app becomes an operation per method (HEAD is implied by GET),
so a route added anywhere shows up without an edit here. Its declaration is found by
endpoint, else by (method, path); a command route's is derived from its spec. A route that
declares nothing is still listed, marked `x-undeclared`, with the answers every route has.

The problems a route can answer because of what it is are added here, once: 400 for a bad
request target (every route, the middleware's), 401/403 where a token is needed, 413/415
and malformed JSON where a body is read, 429 under /api/v1 (rate limits), 503 where
PostgreSQL or Kafka is used.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from importlib.metadata import version
from typing import Any

from starlette.routing import BaseRoute, Mount, Route

from gateway.auth import DEFAULT_SCOPES, OPERATOR_SCOPES
from gateway.openapi.commands import command_operations
from gateway.openapi.model import DATABASE, LOG, Operation, Param, Reply
from gateway.openapi.schema_kit import ID
from gateway.openapi.shapes import HEADERS, SCHEMAS
from gateway.problems import TITLES
from gateway.rate_policies import API_PREFIX, ROUTES

PROBLEM_JSON = "application/problem+json"
Declared = Mapping[Any, Operation]  # by endpoint, or by (method, path)
_PARAM = re.compile(r"{([^}:]+)(?::[^}]+)?}")
EVERY_ROUTE = {400: "invalid-request-target (control characters), invalid-correlation-id"}
WITH_TOKEN = {
    401: "missing-token, invalid-token, expired-token",
    403: "insufficient-scope; or the caller may not act on that object",
}
WITH_BODY = {
    400: "malformed-json",
    413: "body-too-large",
    415: "unsupported-media-type",
    422: "invalid-body",
}
UNDER_API = {429: "rate-limited, too-many-concurrent"}
USES = {DATABASE: "database-unavailable", LOG: "log-unavailable"}
RETRY_AFTER = frozenset({429, 503})
INFO = {
    "title": "Nexus",
    "summary": "Event-sourced platform: commands, queries, notifications, analytics, events.",
    "description": "Generated from the gateway's route table and the Avro schemas. Every "
    "`/api/v1` route takes `Authorization: Bearer <JWT>` (HS256; `nexus token`). Errors are "
    "RFC 9457 `application/problem+json` with a stable `code`.",
}


def openapi_document(routes: Iterable[BaseRoute], declared: Declared) -> dict[str, Any]:
    declared = {**command_operations(), **declared}
    paths: dict[str, dict[str, Any]] = {}
    for path, method, endpoint in _operations(routes):
        operation = declared.get(endpoint) or declared.get((method, path)) or _undeclared(path)
        paths.setdefault(path, {})[method.lower()] = _operation(path, method, operation)
    return {
        "openapi": "3.1.0",
        "info": {**INFO, "version": version("nexus")},
        "jsonSchemaDialect": "https://spec.openapis.org/oas/3.1/dialect/base",
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "headers": HEADERS,
            "securitySchemes": {"bearer": _bearer()},
        },
        "tags": [{"name": tag} for tag in sorted({t for p in paths.values() for t in _tags(p)})],
    }


def _operations(routes: Iterable[BaseRoute]) -> Iterable[tuple[str, str, Any]]:
    """(OpenAPI path, method, endpoint) of every route; a Mount serves GET under its path."""
    for route in routes:
        if isinstance(route, Route):
            for method in sorted((route.methods or {"GET"}) - {"HEAD"}):
                yield _PARAM.sub(r"{\1}", route.path), method, route.endpoint
        elif isinstance(route, Mount):
            yield f"{route.path}/{{path}}", "GET", route.app


def _undeclared(path: str) -> Operation:
    return Operation(
        summary="(declares nothing for the document yet)",
        tag="undeclared",
        scopes=("",) if path.startswith(API_PREFIX) else (),
        replies={200: Reply("see the README")},
    )


def _operation(path: str, method: str, op: Operation) -> dict[str, Any]:
    out: dict[str, Any] = {
        "operationId": _operation_id(method, path),
        "summary": op.summary,
        "tags": [op.tag],
        "parameters": [_parameter(p, "path") for p in _path_params(path, op)]
        + [_parameter(p, p.location) for p in op.params],
        "responses": {**_replies(path, op), **_problems(path, op)},
        "security": [{"bearer": [s] if s else []} for s in op.scopes],
    }
    if op.description:
        out["description"] = op.description
    if op.body is not None:
        media = {m: _media(op.body.schema, op.body.example) for m in op.body.media}
        out["requestBody"] = {"required": not op.body.optional, "content": media}
    if path.startswith(API_PREFIX):
        out["x-rate-limit-class"] = ROUTES.rule(method, path).route_class
    if op.tag == "undeclared":
        out["x-undeclared"] = True
    return out


def _operation_id(method: str, path: str) -> str:
    words = re.sub(r"[^A-Za-z0-9]+", "_", path.replace("{", "by_")).strip("_")
    return f"{method.lower()}_{words}"


def _path_params(path: str, op: Operation) -> list[Param]:
    names = _PARAM.findall(path)
    return [op.path_params.get(n) or Param(n, ID, f"the {n}") for n in names]


def _parameter(param: Param, location: str) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": param.name,
        "in": location,
        "description": param.description,
        "required": param.required or location == "path",
        "schema": param.schema,
    }
    if param.example is not None:
        out["example"] = param.example
    return out


def _media(schema: Any, example: Any) -> dict[str, Any]:
    return {"schema": schema} | ({} if example is None else {"example": example})


def _replies(path: str, op: Operation) -> dict[str, Any]:
    out = {}
    for status, reply in sorted(op.replies.items()):
        described: dict[str, Any] = {"description": reply.description}
        described["headers"] = _headers(path, reply.headers)
        if reply.schema is not None:
            described["content"] = {reply.media: _media(reply.schema, reply.example)}
        out[str(status)] = described
    return out


def _problems(path: str, op: Operation) -> dict[str, Any]:
    when: dict[int, list[str]] = {s: [d] for s, d in EVERY_ROUTE.items()}
    common = [*(USES[u] for u in sorted(op.uses))]
    kinds = [WITH_TOKEN if op.scopes else {}, WITH_BODY if op.body else {},
             UNDER_API if path.startswith(API_PREFIX) else {}, op.problems]  # fmt: skip
    if common:
        kinds.insert(0, {503: ", ".join(common)})
    for kind in kinds:
        for status, text in kind.items():
            when.setdefault(status, []).append(text)
    return {str(status): _problem(path, status, "; ".join(texts)) for status, texts in sorted(
        when.items())}  # fmt: skip


def _problem(path: str, status: int, when: str) -> dict[str, Any]:
    names = ("Retry-After",) if status in RETRY_AFTER else ()
    return {
        "description": f"{TITLES.get(status, 'Error')}: {when}",
        "headers": _headers(path, names),
        "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }


def _headers(path: str, names: Iterable[str]) -> dict[str, Any]:
    """The named headers, required, and those every answer (under /api/v1) may carry."""
    out = {name: {"$ref": f"#/components/headers/{name}"} for name in names}
    out["X-Correlation-Id"] = {"$ref": "#/components/headers/X-Correlation-Id"}
    if path.startswith(API_PREFIX):
        out["RateLimit-Policy"] = {"$ref": "#/components/headers/RateLimit-Policy"}
    return out


def _bearer() -> dict[str, Any]:
    scopes = ", ".join(f"`{s}`" for s in (*DEFAULT_SCOPES, *OPERATOR_SCOPES))
    return {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "HS256 JWT with `exp`, `iss`, `aud` and `sub`; its `scope` claim holds "
        f"space-separated scopes: {scopes}. Each operation lists the scopes that grant it "
        "(any one of them).",
    }


def _tags(path_item: Mapping[str, Any]) -> Iterable[str]:
    return (tag for operation in path_item.values() for tag in operation["tags"])
