"""`GET /api/v1/traces/{id}`: one request's causal chain, read from the log, for operators.

The same tree as `nexus trace ID --json` (projections.causal_chain), and the same ids: a
correlation id, a command id or a notification id. The whole log is read from Kafka
(streams.causal_log) on a worker thread, so the event loop keeps serving meanwhile, and
within TRACE_TIMEOUT_S: past it the answer is 503 `trace-timeout` (`nexus trace` has a
longer bound), and with Kafka unreachable 503 `log-unavailable`. Only `ops:read` may ask:
a trace shows anyone's commands, events and notifications.
"""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.auth import READ_TRACES
from gateway.problems import Problem
from gateway.services import Services
from infra.config.settings import Settings
from projections.causal_chain import Trace, trace, trace_json
from streams.causal_log import LogUnreachable, read_log

TRACE_TIMEOUT_S = 15.0
RETRY = {"Retry-After": "5"}


async def get_trace(request: Request) -> Response:
    services: Services = request.state.services
    services.verifier.principal(request.headers.get("authorization")).require(READ_TRACES)
    asked = request.path_params["id"]
    # The thread ends by its own deadline; waiting a little longer only covers its close.
    work = asyncio.to_thread(_traced, services.settings, asked)
    try:
        found = await asyncio.wait_for(work, TRACE_TIMEOUT_S + 5)
    except LogUnreachable as exc:
        detail = f"the event log cannot be read: {exc}"
        raise Problem(503, "log-unavailable", detail, headers=RETRY) from None
    except TimeoutError:
        detail = f"the log was not read within {TRACE_TIMEOUT_S:g} s; `nexus trace` waits longer"
        raise Problem(503, "trace-timeout", detail, headers=RETRY) from None
    if found is None:
        detail = f"no record has {asked} as its correlation, command or notification id"
        raise Problem(404, "trace-not-found", detail)
    return JSONResponse(trace_json(found))


def _traced(settings: Settings, asked: str) -> Trace | None:
    """Read and build on the worker thread: building walks the whole log too."""
    return trace(read_log(settings, TRACE_TIMEOUT_S).entries, asked)


def trace_routes() -> list[Route]:
    return [Route("/api/v1/traces/{id}", get_trace, methods=["GET"])]
