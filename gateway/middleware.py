"""Pure ASGI middleware: correlation ids in logs, rate limits, request metrics, one access
log event, and the headers every answer carries."""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Iterable
from urllib.parse import unquote_to_bytes

import structlog
from opentelemetry import trace
from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.problems import Problem, problem_response
from gateway.rate_limits import Admission, RateLimiter
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
    """Adds DEFAULT_HEADERS to every response that lacks them: outside CORS, whose preflight
    answers never reach RequestContext (which adds them to every other answer)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = _with_defaults(message.get("headers", []), [])
            await send(message)

        await self.app(scope, receive, send_with_headers)


class RequestContext:
    """The gateway's one middleware around every route: the correlation id (logs, header,
    span), the 400 for what no route may see, the rate limits (gateway.rate_limits), the
    request metrics and access log, and DEFAULT_HEADERS. One layer, one `send` wrapper: a
    stack of them cost a tenth of a command's CPU.

    `traced`: whether spans are exported, decided at start-up (when not, the current span is
    a no-op and naming the correlation id on it is skipped)."""

    def __init__(self, app: ASGIApp, traced: bool = False) -> None:
        self.app, self.traced = app, traced

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        correlation_id, refusal = _correlation(scope)
        structlog.contextvars.bind_contextvars(correlation_id=correlation_id)
        if self.traced:  # backends find a request's trace by it, as `nexus trace` in the log
            trace.get_current_span().set_attribute("nexus.correlation_id", correlation_id)
        state = scope.setdefault("state", {})
        state["correlation_id"] = correlation_id
        admission: Admission | None = None
        limiter: RateLimiter | None = getattr(state.get("services"), "rate_limits", None)
        if refusal is None and limiter is not None:
            try:
                admission = await limiter.admit(scope)
            except Problem as refused:  # a 429: the admission in state gives its fields
                refusal, admission = refused, state["rate_limit"]
        app = self.app if refusal is None else problem_response(refusal, scope["path"])
        added = [(b"x-correlation-id", correlation_id.encode())]
        status = 500
        started = time.perf_counter()

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                # An endpoint's own 429 (an ingest batch) changes the fields: read them now.
                fields = added if admission is None else added + admission.fields()
                message["headers"] = _with_defaults(message.get("headers", []), fields)
            await send(message)

        try:
            await app(scope, receive, send_with_headers)
        finally:
            if admission is not None:
                admission.release()
            _observe(scope, status, time.perf_counter() - started)
            structlog.contextvars.unbind_contextvars("correlation_id")


def _correlation(scope: Scope) -> tuple[str, Problem | None]:
    """The request's correlation id, and a 400 for what no route may see. A refused id is
    not echoed or logged; the 400 carries a fresh one instead."""
    given = b""
    for name, value in scope["headers"]:
        if name == b"x-correlation-id":
            given = value
            break
    bad_id = bool(given) and CORRELATION_ID.fullmatch(given) is None
    correlation_id = given.decode() if given and not bad_id else new_id()
    return correlation_id, _refusal(scope, bad_id)


def _with_defaults(
    headers: Iterable[tuple[bytes, bytes]], added: list[tuple[bytes, bytes]]
) -> list[tuple[bytes, bytes]]:
    """`headers` plus `added`, and DEFAULT_HEADERS the app did not set itself (ASGI header
    names are lower case)."""
    out = [*headers, *added]
    present = {name for name, _ in out}
    out += [(name, value) for name, value in DEFAULT_HEADERS if name not in present]
    return out


def _observe(scope: Scope, status: int, elapsed: float) -> None:
    """Metrics for every answer; an access log event for refusals and errors."""
    route = getattr(scope.get("endpoint"), "__name__", "unmatched")
    method = scope["method"]
    _requests(method, route, status).inc()
    _latency(method, route).observe(elapsed)
    if status >= 400:
        ms = round(elapsed * 1000, 2)
        log.info("http_request", method=method, path=scope["path"], status=status, ms=ms)


# Label children, looked up once: `.labels()` on every request cost as much as the rest of
# the metrics. Bounded, as methods come from clients; the metric itself keeps every child.
@functools.lru_cache(maxsize=1024)
def _requests(method: str, route: str, status: int) -> Counter:
    return REQUESTS.labels(method, route, str(status))


@functools.lru_cache(maxsize=1024)
def _latency(method: str, route: str) -> Histogram:
    return LATENCY.labels(method, route)


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
