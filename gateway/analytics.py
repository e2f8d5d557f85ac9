"""Analytics endpoints: the dashboard's data, one event type's series, a live stream of the
dashboard (Server-Sent Events), and the dashboard page with its static files.

All data routes need the scope `analytics:read`. Browsers' EventSource cannot send headers,
so the stream, and only the stream, also takes the token as `?access_token=`. The page
itself needs no token: it reads one from its URL fragment (`/dashboard#token=...`), which
browsers never send to the server.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from gateway.problems import Problem
from gateway.services import Services
from infra.config.clock import utcnow
from projections import analytics_queries
from projections.analytics.rollups import GRANULARITIES
from projections.queries import JsonDict, json_ready

READ = "analytics:read"
WEB = Path(__file__).with_name("web")
TOP_N = 10
MIN_YEAR, MAX_YEAR = 1970, 9000
DEFAULT_SPAN = {"minute": timedelta(minutes=60), "hour": timedelta(hours=24)}
MAX_SPAN = {"minute": timedelta(days=7), "hour": timedelta(days=92)}
STREAM_INTERVAL_S = 3.0  # how often a stream recomputes the dashboard
# A stream ends after this long; EventSource reconnects (after RECONNECT_MS), which checks
# the token again, so an expired token stops the updates.
STREAM_LIFETIME_S = 300.0
RECONNECT_MS = 2000
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


@dataclass(frozen=True)
class Span:
    """The windows asked for: those starting in [start, end), of one granularity."""

    start: datetime
    end: datetime
    granularity: str

    def echo(self) -> JsonDict:
        return json_ready({"from": self.start, "to": self.end, "granularity": self.granularity})


def analytics_span(params: Mapping[str, str], now: datetime) -> Span:
    """`from`, `to` (ISO-8601, UTC when without offset) and `granularity` from the query.

    Defaults: `to` now, `from` an hour (minute windows) or a day (hour windows) before `to`.
    """
    granularity = params.get("granularity", "minute")
    if granularity not in GRANULARITIES:
        raise Problem(400, "invalid-granularity", "granularity must be minute or hour")
    end = _instant(params, "to") or now
    start = _instant(params, "from") or end - DEFAULT_SPAN[granularity]
    if start > end:
        raise Problem(400, "invalid-range", "from must not be after to")
    if end - start > MAX_SPAN[granularity]:
        raise Problem(
            400,
            "range-too-large",
            f"{granularity} windows cover at most {MAX_SPAN[granularity].days} days per query",
        )
    return Span(start, end, granularity)


def _instant(params: Mapping[str, str], name: str) -> datetime | None:
    raw = params.get(name)
    if raw is None:
        return None
    try:
        at = datetime.fromisoformat(raw)
    except ValueError:
        raise Problem(
            400,
            "invalid-range",
            f"{name} must be an ISO-8601 date-time such as 2025-03-01T12:00:00Z"
            " (a + in an offset must be sent as %2B)",
        ) from None
    at = at if at.tzinfo else at.replace(tzinfo=UTC)
    # Windows are computed by subtracting spans: keep far from datetime's ends (OverflowError).
    if not MIN_YEAR <= at.year <= MAX_YEAR:
        detail = f"{name} must fall in the years {MIN_YEAR} to {MAX_YEAR}"
        raise Problem(400, "invalid-range", detail)
    return at


async def get_dashboard(request: Request) -> Response:
    services = _authorized(request, request.headers.get("authorization"))
    span = analytics_span(request.query_params, utcnow())
    return JSONResponse(await _dashboard(services, span))


async def get_event_series(request: Request) -> Response:
    services = _authorized(request, request.headers.get("authorization"))
    event_type = request.path_params["type"]
    if event_type not in services.registry.names("tracking"):
        raise Problem(404, "event-type-not-found", f"no tracked event type {event_type}")
    span = analytics_span(request.query_params, utcnow())
    async with services.pool.connection() as conn:
        series = await analytics_queries.event_series(
            conn, event_type, span.start, span.end, span.granularity, TOP_N
        )
    return JSONResponse({"event_type": event_type, **span.echo(), "series": series})


async def stream_dashboard(request: Request) -> Response:
    """SSE: `event: dashboard` with the dashboard of the last hour (or day) whenever it
    changed, checked every few seconds, and a `: heartbeat` comment otherwise."""
    token = request.query_params.get("access_token")
    authorization = request.headers.get("authorization") if token is None else f"Bearer {token}"
    services = _authorized(request, authorization)
    wanted = {"granularity": request.query_params.get("granularity", "minute")}
    granularity = analytics_span(wanted, utcnow()).granularity
    return StreamingResponse(
        dashboard_events(services, granularity),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


async def dashboard_events(services: Services, granularity: str) -> AsyncIterator[str]:
    """The stream's messages. Starlette cancels this when the client disconnects."""
    yield f"retry: {RECONNECT_MS}\n\n"
    last: str | None = None
    deadline = time.monotonic() + STREAM_LIFETIME_S
    while time.monotonic() < deadline:
        body = await _dashboard(services, analytics_span({"granularity": granularity}, utcnow()))
        # The range slides with the clock; only a change of the figures is news.
        figures = json.dumps({k: v for k, v in body.items() if k not in ("from", "to")})
        if figures != last:
            last = figures
            yield sse_message("dashboard", body)
        else:
            yield ": heartbeat\n\n"
        await asyncio.sleep(STREAM_INTERVAL_S)


def sse_message(event: str, data: Any) -> str:
    # Compact JSON holds no newline, so the data fits one `data:` line.
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


async def _dashboard(services: Services, span: Span) -> JsonDict:
    async with services.pool.connection() as conn:
        figures = await analytics_queries.dashboard(
            conn, span.start, span.end, span.granularity, TOP_N
        )
    return {**span.echo(), **figures}


def _authorized(request: Request, authorization: str | None) -> Services:
    services: Services = request.state.services
    services.verifier.principal(authorization).require(READ)
    return services


def analytics_routes() -> list[BaseRoute]:
    templates = Jinja2Templates(directory=WEB / "templates")

    async def dashboard_page(request: Request) -> Response:
        context = {"granularities": list(GRANULARITIES), "top_n": TOP_N}
        return templates.TemplateResponse(request, "dashboard.html", context, headers=PAGE_HEADERS)

    return [
        Route("/api/v1/analytics/dashboard", get_dashboard, methods=["GET"]),
        Route("/api/v1/analytics/events/{type}", get_event_series, methods=["GET"]),
        Route("/api/v1/analytics/stream", stream_dashboard, methods=["GET"]),
        Route("/dashboard", dashboard_page, methods=["GET"]),
        Mount("/static", app=StaticFiles(directory=WEB / "static"), name="static"),
    ]
