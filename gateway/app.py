"""The gateway's composition root: wires real adapters into a Starlette app."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
import structlog
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from psycopg_pool import AsyncConnectionPool, PoolTimeout
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.analytics import analytics_routes
from gateway.auth import TokenVerifier
from gateway.commands import command_routes
from gateway.dispatch import CommandDispatcher
from gateway.events import event_routes
from gateway.ingest import ingest_routes
from gateway.middleware import DefaultHeaders, RequestContext
from gateway.notifications import REPLAYED, notification_routes
from gateway.openapi.pages import docs_routes
from gateway.outcomes import OutcomeListener
from gateway.problems import Problem, problem_response
from gateway.publishing import EventPublisher
from gateway.queries import query_routes
from gateway.rate_limits import RateLimiter
from gateway.services import Services
from gateway.traces import trace_routes
from infra.config.settings import Settings
from sagas.rendering import TemplateRenderer
from schemas.codec import AvroCodec
from schemas.registry import default_registry
from schemas.tracking_plan import load_plan
from streams.ingest import Ingestor
from streams.kafka.async_producer import AsyncProducer
from streams.kafka.config import producer_config
from streams.notification_requests import NotificationRequests
from streams.process.telemetry import exporting

log = structlog.get_logger()
# CORS, when origins are configured: the API's methods and the headers it reads and sets.
# Bearer tokens, not cookies, so credentials stay off (and `*` is refused by the settings).
CORS_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]
CORS_REQUEST_HEADERS = ["Authorization", "Content-Type", "If-Match", "Prefer", "X-Correlation-Id"]
CORS_EXPOSED_HEADERS = [
    "ETag",
    "Location",
    "Retry-After",
    "X-Correlation-Id",
    REPLAYED,
    "RateLimit",
    "RateLimit-Policy",
]


async def start_services(settings: Settings) -> Services:
    codec = AvroCodec(default_registry())
    listener = OutcomeListener(settings, codec, asyncio.get_running_loop())
    listener.start()
    producer = AsyncProducer(producer_config(settings))
    # Fails the start (before any connection) for a JWT secret under 32 bytes.
    verifier = TokenVerifier.from_settings(settings)
    pool = AsyncConnectionPool(
        settings.resolved_database_url,
        min_size=2,
        max_size=10,
        open=False,
        timeout=settings.database_timeout_s,  # then PoolTimeout: a 503, not a hung request
    )
    await pool.open(wait=False)
    dispatcher = CommandDispatcher(producer, codec, listener, settings.topic("commands"))
    return Services(
        settings,
        codec.registry,
        verifier,
        producer,
        listener,
        dispatcher,
        pool,
        notification_requests=NotificationRequests(settings, producer, codec),
        notification_templates=frozenset(TemplateRenderer(settings.templates_dir).requestable()),
        ingestor=Ingestor(settings, producer, codec, load_plan(settings.analytics_file)),
        rate_limits=RateLimiter(settings, verifier),
        event_publisher=EventPublisher(producer, codec, pool, settings.topic("events")),
    )


async def stop_services(services: Services) -> None:
    services.listener.stop()
    await asyncio.to_thread(services.producer.close)
    await services.pool.close()


async def healthz(request: Request) -> Response:
    """503 while the outcome listener's thread has stopped going round (its watchdog)."""
    live = request.state.services.listener.watchdog.liveness()
    body = {"status": "ok" if live.ok else "failing", "problems": list(live.problems)}
    return JSONResponse(body, 200 if live.ok else 503)


async def readyz(request: Request) -> Response:
    services: Services = request.state.services
    checks = {
        "kafka": await asyncio.to_thread(services.producer.reachable, 1.0),
        "outcomes": services.listener.ready.is_set(),
        "postgres": await _postgres_ok(services.pool),
    }
    ready = all(checks.values())
    body = {"status": "ready" if ready else "not ready", "checks": checks}
    return JSONResponse(body, 200 if ready else 503)


async def metrics(request: Request) -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


async def _postgres_ok(pool: AsyncConnectionPool) -> bool:
    try:
        async with pool.connection(timeout=1.0) as conn:
            await conn.execute("SELECT 1")
    except Exception:  # any failure means not ready
        return False
    return True


async def _problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Problem)
    return problem_response(exc, request.url.path)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    problem = Problem(
        exc.status_code, "http-" + str(exc.status_code), exc.detail, headers=dict(exc.headers or {})
    )
    return problem_response(problem, request.url.path)


async def _database_error(request: Request, exc: Exception) -> Response:
    # psycopg.OperationalError covers what a lost server raises: connection failures,
    # AdminShutdown, "server closed the connection", and the pool's PoolTimeout.
    log.warning("database_unavailable", error=f"{type(exc).__name__}: {exc}")
    problem = Problem(503, "database-unavailable", "the read models cannot be reached now",
                      headers={"Retry-After": "5"})  # fmt: skip
    return problem_response(problem, request.url.path)


async def _server_error(request: Request, exc: Exception) -> Response:
    return problem_response(Problem(500, "internal", "unexpected error"), request.url.path)


def middleware(settings: Settings) -> list[Middleware]:
    """Outermost first. When spans are exported, the OpenTelemetry server span (continuing
    a client's `traceparent`) wraps everything, so every answer is traced. RequestContext
    (correlation id, rate limits, metrics, access log, default headers) is one layer, as
    each layer costs every request; its refusals (400, 429) are logged and counted like any
    other answer. CORS, when configured, comes before it, so browsers can read refusals,
    inside DefaultHeaders, so its preflight answers carry them too."""
    layers = []
    if exporting():  # its no-op spans still parse and wrap every request
        layers.append(Middleware(OpenTelemetryMiddleware, exclude_spans=["receive", "send"]))
    if origins := settings.allowed_origins:
        cors = Middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=CORS_METHODS,
            allow_headers=CORS_REQUEST_HEADERS,
            expose_headers=CORS_EXPOSED_HEADERS,
            allow_credentials=False,
            max_age=600,
        )
        layers += [Middleware(DefaultHeaders), cors]
    layers.append(Middleware(RequestContext, traced=exporting()))
    return layers


def create_app(settings: Settings) -> Starlette:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        services = await start_services(settings)
        try:
            yield {"services": services}
        finally:
            await stop_services(services)

    routes = [
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", metrics),
        *command_routes(),
        *query_routes(),
        *notification_routes(),
        *ingest_routes(),
        *event_routes(),
        *analytics_routes(),
        *trace_routes(),
        *docs_routes(),
    ]
    return Starlette(
        routes=routes,
        middleware=middleware(settings),
        exception_handlers={
            Problem: _problem,
            HTTPException: _http_error,
            psycopg.OperationalError: _database_error,
            PoolTimeout: _database_error,
            Exception: _server_error,
        },
        lifespan=lifespan,
    )
