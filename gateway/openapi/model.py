"""What a route declares for the OpenAPI document, beyond what its Route already says.

A Starlette Route tells its path, its path parameters and its methods; it cannot tell which
query parameters the endpoint reads, which scopes it needs, what it answers. An Operation
says that, as data. The problems every route of a kind can answer (a 401 for a missing
token, a 429, a 503 when PostgreSQL is away) are added by gateway.openapi.document from the
operation's `scopes` and `uses`, so each is stated once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

JsonSchema = dict[str, Any]
JSON = "application/json"
DATABASE, LOG = "database", "log"  # what an endpoint depends on: each adds its 503


@dataclass(frozen=True)
class Param:
    """A query or header parameter (path parameters come from the route's path)."""

    name: str
    schema: JsonSchema
    description: str
    location: str = "query"
    required: bool = False
    example: Any = None


@dataclass(frozen=True)
class Reply:
    """A success: its body's schema (None: no body described), media type and headers."""

    description: str
    schema: JsonSchema | None = None
    media: str = JSON
    headers: tuple[str, ...] = ()  # names of gateway.openapi.shapes.HEADERS
    example: Any = None


@dataclass(frozen=True)
class Body:
    """A request body. `optional`: the endpoint also takes none at all."""

    schema: JsonSchema
    media: tuple[str, ...] = (JSON,)
    optional: bool = False
    example: Any = None
    description: str = ""


@dataclass(frozen=True)
class Operation:
    summary: str
    tag: str
    replies: Mapping[int, Reply]
    description: str = ""
    # Any one of these grants the route (the security requirement lists them as
    # alternatives); empty: no token needed.
    scopes: tuple[str, ...] = ()
    params: tuple[Param, ...] = ()
    path_params: Mapping[str, Param] = field(default_factory=dict)  # else an id
    body: Body | None = None
    problems: Mapping[int, str] = field(default_factory=dict)  # its own, status -> when
    uses: frozenset[str] = frozenset()  # DATABASE, LOG
