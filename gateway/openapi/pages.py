"""`GET /api/openapi.json` (the document, built from the app's routes on first request) and
`GET /api/docs` (Swagger UI, vendored under gateway/web/static/vendor/, on that document).

Neither needs a token: the document says what the API takes, not what it holds. The docs
page loads nothing from elsewhere: its Content-Security-Policy allows this origin only
(styles inline too, which Swagger UI sets; images as data: URIs, which its CSS uses).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from gateway.openapi.document import openapi_document
from gateway.openapi.model import Operation, Reply

DOCUMENT_PATH, DOCS_PATH = "/api/openapi.json", "/api/docs"
PAGE = (Path(__file__).parents[1] / "web" / "templates" / "api-docs.html").read_text()
DOCS_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; connect-src 'self'; "
    "style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


async def openapi_json(request: Request) -> Response:
    """Built once per app, from the routes it actually has."""
    document = getattr(request.app.state, "openapi", None)
    if document is None:
        document = request.app.state.openapi = openapi_document(request.app.routes, declared())
    return JSONResponse(document, headers={"Cache-Control": "no-cache"})


async def api_docs(request: Request) -> Response:
    return HTMLResponse(PAGE, headers=DOCS_HEADERS)


def declared() -> dict[Any, Operation]:
    """Every route's declaration. Imported here, not at the top: the catalog names the app's
    own endpoints (gateway.app), and gateway.app mounts these pages."""
    from gateway.openapi.catalog import OPERATIONS
    from gateway.openapi.catalog_writes import PAGES, WRITES

    return {**OPERATIONS, **WRITES, **PAGES, **DOCS}


DOCS = {
    openapi_json: Operation(
        summary="This document",
        tag="documentation",
        description="OpenAPI 3.1, generated from the route table and the Avro schemas.",
        replies={200: Reply("the document", {"type": "object"})},
    ),
    api_docs: Operation(
        summary="The API documentation page (Swagger UI)",
        tag="documentation",
        replies={
            200: Reply(
                "the page", {"type": "string"}, "text/html", headers=("Content-Security-Policy",)
            )
        },  # fmt: skip
    ),
}


def docs_routes() -> list[Route]:
    return [
        Route(DOCUMENT_PATH, openapi_json, methods=["GET"]),
        Route(DOCS_PATH, api_docs, methods=["GET"]),
    ]
