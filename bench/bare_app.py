"""The reference for the HTTP figure: a bare Starlette endpoint doing only the JSON work.

It parses the body with json.loads and answers 202 with a small JSON document, served by
uvicorn exactly as gateway/main.py serves the gateway. Run: python -m bench.bare_app PORT
"""

from __future__ import annotations

import json
import sys
import uuid

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


async def accept(request: Request) -> Response:
    body = json.loads(await request.body())
    command_id = str(uuid.uuid4())
    answer = {"command_id": command_id, "aggregate_id": body.get("user_id"), "status": "pending"}
    return JSONResponse(answer, 202, headers={"Location": f"/api/v1/commands/{command_id}"})


async def readyz(request: Request) -> Response:
    return JSONResponse({"status": "ready"})


def create_app() -> Starlette:
    return Starlette(
        routes=[Route("/api/v1/users", accept, methods=["POST"]), Route("/readyz", readyz)]
    )


def main(port: int) -> None:
    uvicorn.run(
        create_app(),
        host="127.0.0.1",
        port=port,
        log_config=None,
        access_log=False,
        lifespan="on",
    )


if __name__ == "__main__":
    main(int(sys.argv[1]))
