"""Rate limits: route classes, header fields, budgets and caps, and the middleware in a small
app (no broker or database is involved; the real stack is in tests/e2e/test_rate_limits_api.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from limits.aio.storage import MemoryStorage
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from gateway.app import create_app
from gateway.auth import TokenVerifier
from gateway.commands import COMMAND_ROUTES
from gateway.middleware import RequestContext
from gateway.problems import Problem, problem_response
from gateway.rate_limits import ConcurrencyCap, RateLimiter
from gateway.rate_policies import (
    ROUTE_RULES,
    ROUTES,
    TRACE_READS,
    TRACE_READS_AT_ONCE,
    concurrency_policy_field,
    limit_field,
    policies,
)
from infra.config.settings import Settings

SECRET = "unit-secret-0123456789-0123456789"


def verifier() -> TokenVerifier:
    return TokenVerifier(SECRET, "nexus", "nexus-api")


def settings(**limits: Any) -> Settings:
    return Settings(jwt_secret=SECRET, **limits)


@pytest.mark.parametrize(
    ("method", "path", "route_class"),
    [
        ("POST", "/api/v1/users", "commands"),
        ("PATCH", "/api/v1/users/u-1", "commands"),
        ("DELETE", "/api/v1/workspaces/w-1/members/u-2", "commands"),
        ("POST", "/api/v1/notifications", "notifications"),
        ("POST", "/api/v1/ingest/event", "ingest"),
        ("POST", "/api/v1/ingest/batch", "ingest"),
        ("GET", "/api/v1/users/u-1", "queries"),
        ("GET", "/api/v1/notifications/n-1", "queries"),
        ("GET", "/api/v1/analytics/stream", "streams"),
        ("GET", "/api/v1/traces/c-1", "queries"),
        ("GET", "/api/v1/no-such-route", "queries"),
        ("POST", "/api/v1/no-such-route", "commands"),
    ],
)
def test_each_request_has_one_route_class(method: str, path: str, route_class: str) -> None:
    assert ROUTES.rule(method, path).route_class == route_class


def test_every_command_route_and_every_write_route_of_the_app_is_declared() -> None:
    for spec in COMMAND_ROUTES:
        assert ROUTES.rule(spec.method, spec.path).route_class == "commands"
    declared = {(rule.method, rule.path) for rule in ROUTE_RULES}
    for route in create_app(settings()).routes:
        path, methods = getattr(route, "path", ""), getattr(route, "methods", None) or set()
        if path.startswith("/api/v1/"):
            writes = methods - {"GET", "HEAD"}
            assert {(m, path) for m in writes} <= declared, f"{path} is not in ROUTE_RULES"


def test_header_fields_follow_the_draft() -> None:
    limits = policies(settings(rate_limit_commands="100/second", rate_limit_streams="60/minute"))
    assert limits["commands"].field == '"commands";q=100;w=1'
    assert limits["streams"].field == '"streams";q=60;w=60'
    assert limit_field("commands", 0, 1) == '"commands";r=0;t=1'
    assert limit_field("after-waits", 0) == '"after-waits";r=0'
    assert concurrency_policy_field("open-streams", 8) == (
        '"open-streams";q=8;qu="concurrent-requests"'
    )


@pytest.mark.parametrize("text", ["lots", "10/second;100/minute", "0/second"])
def test_a_bad_limit_names_its_variable(text: str) -> None:
    with pytest.raises(ValueError, match="NEXUS_RATE_LIMIT_QUERIES"):
        policies(settings(rate_limit_queries=text))


async def test_a_budget_refuses_once_spent_with_the_time_to_wait() -> None:
    limiter = RateLimiter(settings(rate_limit_commands="3/minute"), verifier())
    scope = scope_of("POST", "/api/v1/users", verifier().issue("ann", []))
    admission = limiter.admission(scope, ROUTES.rule("POST", "/api/v1/users"))
    assert admission.key == "sub:ann" and admission.policy.name == "commands"
    for _ in range(3):
        await limiter.charge(admission, 1)
    assert admission.remaining is None  # an admitted request does not read the window back
    with pytest.raises(Problem) as refused:
        await limiter.charge(admission, 1)
    assert (admission.remaining, 0 < admission.reset_in <= 60) == (0, True)
    assert refused.value.status == 429 and refused.value.code == "rate-limited"
    assert 1 <= int(refused.value.headers["Retry-After"]) <= 60
    assert refused.value.extra == {"violated-policies": ["commands"]}


async def test_without_a_valid_token_the_client_address_pays() -> None:
    limiter = RateLimiter(settings(rate_limit_anonymous="5/second"), verifier())
    for token in (None, "not-a-jwt"):
        admission = limiter.admission(
            scope_of("GET", "/api/v1/users", token), ROUTES.rule("GET", "/")
        )
        assert (admission.key, admission.policy.name) == ("addr:10.0.0.7", "anonymous")


def test_the_limiter_and_the_endpoint_verify_a_token_once() -> None:
    calls: list[str] = []

    class Counting(TokenVerifier):
        def _claims(self, token: str) -> dict[str, Any]:
            calls.append(token)
            return super()._claims(token)

    shared = Counting(SECRET, "nexus", "nexus-api")
    limiter = RateLimiter(settings(), shared)
    token = verifier().issue("ann", ["users:write"])
    scope = scope_of("POST", "/api/v1/users", token)
    admission = limiter.admission(scope, ROUTES.rule("POST", "/api/v1/users"))
    assert admission.key == "sub:ann"
    assert shared.principal(f"Bearer {token}").subject == "ann" and len(calls) == 1


def test_a_concurrency_cap_counts_per_caller_and_frees_on_exit() -> None:
    cap = ConcurrencyCap("open-streams", 2, 5)
    with cap.hold("sub:ann"), cap.hold("sub:ann"), cap.hold("sub:bob"):
        with pytest.raises(Problem) as refused, cap.hold("sub:ann"):
            pass
        assert refused.value.status == 429 and refused.value.code == "too-many-concurrent"
        assert refused.value.headers["RateLimit"] == '"open-streams";r=0'
    assert cap.held == {}


def test_a_trace_holds_one_of_the_few_trace_reads_a_caller_may_run_at_once() -> None:
    assert ROUTES.rule("GET", "/api/v1/traces/c-1").holds == TRACE_READS
    assert RateLimiter(settings(), verifier()).caps[TRACE_READS].most == TRACE_READS_AT_ONCE


def test_limits_memory_storage_still_has_the_hook_swept_memory_storage_overrides() -> None:
    assert hasattr(MemoryStorage, "_MemoryStorage__schedule_expiry")


def scope_of(method: str, path: str, token: str | None) -> dict[str, Any]:
    headers = [(b"authorization", f"Bearer {token}".encode())] if token else []
    return {"type": "http", "method": method, "path": path, "headers": headers,
            "query_string": b"", "client": ("10.0.0.7", 5555)}  # fmt: skip


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    """A small app behind the gateway's middleware, with a command route and a batch route."""
    limits = settings(rate_limit_commands="2/minute", rate_limit_ingest="10/minute")
    limiter = RateLimiter(limits, verifier())

    async def ok(request: Request) -> Response:
        return JSONResponse({"ok": True}, 202)

    async def batch(request: Request) -> Response:
        await limiter.charge_total(request, int(request.query_params["events"]))
        return JSONResponse({"ok": True}, 202)

    async def problem(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, Problem)
        return problem_response(exc, request.url.path)

    routes = [
        Route("/api/v1/users", ok, methods=["POST"]),
        Route("/api/v1/ingest/batch", batch, methods=["POST"]),
        Route("/healthz", ok),
    ]
    app = Starlette(
        routes=routes,
        middleware=[Middleware(RequestContext)],
        exception_handlers={Problem: problem},
    )

    async def with_services(scope: Scope, receive: Receive, send: Send) -> None:
        # What the server hands each request from the lifespan state.
        scope["state"] = {"services": SimpleNamespace(rate_limits=limiter)}
        await app(scope, receive, send)

    transport = httpx.ASGITransport(app=with_services, client=("10.0.0.7", 5555))
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as http:
        yield http


def bearer(subject: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {verifier().issue(subject, [])}"}


async def test_the_middleware_answers_429_problems_with_the_fields(
    client: httpx.AsyncClient,
) -> None:
    first = await client.post("/api/v1/users", headers=bearer("ann"))
    assert first.status_code == 202
    assert first.headers["ratelimit-policy"] == '"commands";q=2;w=60'
    assert "ratelimit" not in first.headers  # told on a refusal only
    await client.post("/api/v1/users", headers=bearer("ann"))
    refused = await client.post("/api/v1/users", headers=bearer("ann"))
    assert refused.status_code == 429
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["title"] == "Too Many Requests"
    assert refused.json()["violated-policies"] == ["commands"]
    assert int(refused.headers["retry-after"]) >= 1
    assert refused.headers["ratelimit"].startswith('"commands";r=0;t=')
    assert (await client.post("/api/v1/users", headers=bearer("bob"))).status_code == 202
    assert "ratelimit" not in (await client.get("/healthz")).headers  # only /api/v1 is limited


async def test_a_batch_costs_one_unit_per_event(client: httpx.AsyncClient) -> None:
    taken = await client.post("/api/v1/ingest/batch", params={"events": 6}, headers=bearer("ann"))
    assert taken.status_code == 202
    refused = await client.post("/api/v1/ingest/batch", params={"events": 5}, headers=bearer("ann"))
    assert refused.status_code == 429 and refused.json()["code"] == "rate-limited"
    # 4 were left; the refused batch spent only the unit charged before its events were counted.
    assert refused.headers["ratelimit"].startswith('"ingest";r=3;')
    rest = await client.post("/api/v1/ingest/batch", params={"events": 3}, headers=bearer("ann"))
    assert rest.status_code == 202
    empty = await client.post("/api/v1/ingest/batch", params={"events": 1}, headers=bearer("ann"))
    assert empty.status_code == 429 and empty.headers["ratelimit"].startswith('"ingest";r=0;')
    too_big = await client.post(
        "/api/v1/ingest/batch", params={"events": 11}, headers=bearer("bob")
    )
    assert too_big.status_code == 413 and too_big.json()["code"] == "over-rate-limit"
