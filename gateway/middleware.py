"""Pure ASGI middleware: correlation ids in logs, request metrics, one access log event,
and the headers every answer carries."""

from __future__ import annotations

import re
import time
from urllib.parse import unquote_to_bytes

import structlog
from opentelemetry import trace
from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.problems import Problem, problem_response
from streams.ids import new_id

log = structlog.get_logger()
REQUESTS = Counter("nexus_http_requests_total", "HTTP requests", ["method", "route", "status"])
LATENCY = Histogram("nexus_http_request_seconds", "HTTP request latency", ["method", "route"])
# A caller's id goes into every log line and back in a header: printable ASCII, bounded.
CORRELATION_ID = re.compile(rb"[A-Za-z0-9._:-]{1,128}")
CONTROL = re.compile(rb"[\x00-\x1f\x7f]")
# Added where the route did not set its own (the dashboard page and the stream set theirs).
DEFAULT_HEADERS = ((b"x-content-type-options", b"nosniff"), (b"cache-control", b"no-store"))


class DefaultHeaders:
    """Adds DEFAULT_HEADERS to every response that lacks them, refusals included."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers += [(n, v) for n, v in DEFAULT_HEADERS if n not in present]
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


class RequestContext:
    """`traced`: whether spans are exported, decided at start-up (when not, the current
    span is a no-op and naming the correlation id on it is skipped)."""

    def __init__(self, app: ASGIApp, traced: bool = False) -> None:
        self.app, self.traced = app, traced

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(b"x-correlation-id", b"")
        bad_id = bool(given) and CORRELATION_ID.fullmatch(given) is None
        # A refused id is not echoed or logged; the 400 carries a fresh one instead.
        correlation_id = given.decode() if given and not bad_id else new_id()
        refusal = _refusal(scope, bad_id)
        app = self.app if refusal is None else problem_response(refusal, scope["path"])
        structlog.contextvars.bind_contextvars(correlation_id=correlation_id)
        if self.traced:  # backends find a request's trace by it, as `nexus trace` in the log
            trace.get_current_span().set_attribute("nexus.correlation_id", correlation_id)
        scope.setdefault("state", {})["correlation_id"] = correlation_id
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [
                    *message.get("headers", []),
                    (b"x-correlation-id", correlation_id.encode()),
                ]
            await send(message)

        try:
            await app(scope, receive, send_with_id)
        finally:
            endpoint = scope.get("endpoint")
            route = getattr(endpoint, "__name__", "unmatched")
            elapsed = time.perf_counter() - started
            REQUESTS.labels(scope["method"], route, str(status)).inc()
            LATENCY.labels(scope["method"], route).observe(elapsed)
            if status >= 400:
                log.info(
                    "http_request",
                    method=scope["method"],
                    path=scope["path"],
                    status=status,
                    ms=round(elapsed * 1000, 2),
                )
            structlog.contextvars.unbind_contextvars("correlation_id")


def _refusal(scope: Scope, bad_id: bool) -> Problem | None:
    """A 400 for what no route may see; answered here, outside the app's exception handlers,
    as the same problem+json. Control characters (NUL above all, which PostgreSQL text
    refuses) have no place in an id, a cursor or a date, so they are refused for every route."""
    if bad_id:
        detail = "X-Correlation-Id must be 1 to 128 characters of letters, digits, . _ : -"
        return Problem(400, "invalid-correlation-id", detail)
    query = unquote_to_bytes(scope.get("query_string", b"").replace(b"+", b" "))
    if CONTROL.search(scope["path"].encode(errors="replace")) or CONTROL.search(query):
        detail = "the path and query must not hold control characters"
        return Problem(400, "invalid-request-target", detail)
    return None
