"""Hostile and odd input against the real gateway process: always a 4xx problem, never a 5xx.

Each case here answered 500 (or, for a NUL in a string, poisoned the users projection)
before the input bounds: see gateway/input_bounds.py and gateway/middleware.py.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator

import httpx
import jwt
import pytest
from stack import ServiceProcess, api_client, prepared, running
from test_http_api import assert_problem

from gateway.auth import DEFAULT_SCOPES
from infra.config.settings import Settings
from infra.local.processes import ProcessError
from infra.local.service_env import with_free_ports

ORIGIN = "http://app.example"
SCOPES = [*DEFAULT_SCOPES, "users:admin"]
DEEP = '{"email": "a@b.co", "name": ' + "[" * 100_000 + "]" * 100_000 + "}"


@pytest.fixture(scope="module")
def stack(module_settings: Settings) -> Iterator[Settings]:
    settings = prepared(module_settings, cors_origins=ORIGIN)
    with running(settings, ("command-processor", "projector", "gateway")):
        yield settings


@pytest.fixture
def api(stack: Settings) -> Iterator[httpx.Client]:
    # A client per test: the server drops a connection after any 500, failing the next test.
    with api_client(stack, "alice", SCOPES) as client:
        yield client


def test_query_integers_are_ascii_and_bounded(api: httpx.Client) -> None:
    for limit in ("²", "٣", "9" * 5000, "0"):
        assert_problem(api.get("/api/v1/users", params={"limit": limit}), 400, "invalid-limit")
        listing = api.get("/api/v1/users/alice/notifications", params={"limit": limit})
        assert_problem(listing, 400, "invalid-limit")
    for after in ("1-" + "9" * 30, "1-1 ", "٣-١", "9" * 5000 + "-1"):
        found = api.get("/api/v1/users/alice", params={"after": after})
        assert_problem(found, 400, "invalid-position")
    newline = api.get("/api/v1/users/alice", params={"after": "1-1\n"})
    assert_problem(newline, 400, "invalid-request-target")
    assert api.get("/api/v1/users", params={"limit": "2"}).status_code == 200


def test_if_match_and_ids_are_bounded(api: httpx.Client) -> None:
    huge = {"If-Match": '"' + "9" * 5000 + '"'}
    patched = api.patch("/api/v1/users/alice", json={"name": "B"}, headers=huge)
    assert_problem(patched, 400, "invalid-if-match")
    body = {"user_id": "abc\n", "email": "a@b.co", "name": "A"}
    assert_problem(api.post("/api/v1/users", json=body), 422, "invalid-id")


def post_json(api: httpx.Client, path: str, text: str) -> httpx.Response:
    return api.post(path, content=text.encode(), headers={"Content-Type": "application/json"})


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (DEEP, "deeper than 32 levels"),
        ('{"email": "a@b.co", "name": "A", "n": ' + "1" * 5000 + "}", "more than 100 digits"),
        ('{"email": "a@b.co", "name": NaN}', "NaN"),
        ('{"email": "a@b.co", "name": "A\\u0000B"}', "U+0000"),
        ('{"email": "a@b.co", "name": "A\\ud800"}', "lone surrogate"),
    ],
)
def test_command_bodies_past_the_json_bounds_are_400(
    api: httpx.Client, text: str, reason: str
) -> None:
    problem = assert_problem(post_json(api, "/api/v1/users", text), 400, "malformed-json")
    assert reason in problem["detail"]


def test_notification_and_ingest_bodies_past_the_json_bounds_are_400(api: httpx.Client) -> None:
    assert_problem(post_json(api, "/api/v1/notifications", DEEP), 400, "malformed-json")
    assert_problem(post_json(api, "/api/v1/ingest/event", DEEP), 400, "malformed-json")
    deep_batch = "[" + DEEP + "]"
    assert_problem(post_json(api, "/api/v1/ingest/batch", deep_batch), 400, "malformed-json")
    event = json.dumps({"type": "page.view", "data": {"page": "/"}})
    lines = f'{event}\n{event[:-1]}, "x": {"[" * 5000}{"]" * 5000}}}\n'
    ndjson = api.post(
        "/api/v1/ingest/batch",
        content=lines.encode(),
        headers={"Content-Type": "application/x-ndjson"},
    )
    problem = assert_problem(ndjson, 400, "malformed-json")
    assert problem["line"] == 2 and "deeper than 32" in problem["detail"]


def test_a_bad_correlation_id_is_a_400_problem(api: httpx.Client) -> None:
    for given in (b"\xff\xfe", b"x" * 129, b"two words"):
        response = api.get("/api/v1/users", headers={b"X-Correlation-Id": given})
        assert_problem(response, 400, "invalid-correlation-id")
        assert response.headers["x-correlation-id"].encode() != given
        assert response.headers["x-content-type-options"] == "nosniff"
    kept = api.get("/api/v1/users", headers={"X-Correlation-Id": "trace-1:a.b_c"})
    assert kept.headers["x-correlation-id"] == "trace-1:a.b_c"


def nested_header_token() -> str:
    def b64(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    header = b64(b'{"alg":"HS256","x":' + b"[" * 1500 + b"]" * 1500 + b"}")
    return f"{header}.{b64(b'{}')}.{b64(b'x' * 32)}"


def test_odd_authorization_headers_are_401(api: httpx.Client, stack: Settings) -> None:
    url = api.base_url.join("/api/v1/users")
    for token in ("a" * 9000, nested_header_token()):
        response = httpx.get(url, headers={"Authorization": f"Bearer {token}"})
        assert_problem(response, 401, "invalid-token")
    latin = httpx.get(url, headers={b"Authorization": b"Bearer \xff\xfe.\xfe.\xff"})
    assert_problem(latin, 401, "invalid-token")
    now = int(time.time())
    claims = {"sub": "a", "iss": stack.jwt_issuer, "aud": stack.jwt_audience, "iat": now}
    secret = stack.resolved_jwt_secret()
    for odd in (
        {"exp": now + 3 * 24 * 3600},
        {"exp": float("inf")},
        {"exp": now + 60, "iat": None},
    ):
        token = jwt.encode({**claims, **odd}, secret, "HS256")
        response = httpx.get(url, headers={"Authorization": f"Bearer {token}"})
        assert_problem(response, 401, "invalid-token")


def test_odd_prefer_content_type_and_targets_are_not_5xx(api: httpx.Client) -> None:
    for prefer in ("wait=²", "wait=" + "9" * 5000, "wait=1e999", "wait"):
        headers = {b"Prefer": prefer.encode()}  # UTF-8 bytes, as a client might send
        response = api.patch("/api/v1/users/alice", json={"name": "P"}, headers=headers)
        assert response.status_code < 500, (prefer, response.text)
    for media in ("x" * 4000, "application/json; charset=\u00ff", ";;;"):
        response = api.post(
            "/api/v1/users", content=b"{}", headers={b"Content-Type": media.encode()}
        )
        assert 400 <= response.status_code < 500, (media, response.text)
    for path in ("/api/v1/users/%00", "/api/v1/users?cursor=%00", "/api/v1/sagas/%00/history"):
        assert_problem(api.get(path), 400, "invalid-request-target")


def test_answers_carry_nosniff_and_no_store(api: httpx.Client) -> None:
    for response in (api.get("/healthz"), httpx.get(api.base_url.join("/api/v1/users"))):
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["cache-control"] == "no-store"
    page = api.get("/dashboard")
    assert page.headers["content-security-policy"].startswith("default-src 'self'")
    assert page.headers.get_list("cache-control") == ["no-store"]  # its own, not doubled


def test_cors_answers_the_listed_origin_only(api: httpx.Client) -> None:
    preflight = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type",
    }
    allowed = api.options("/api/v1/users", headers={"Origin": ORIGIN, **preflight})
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == ORIGIN
    assert "access-control-allow-credentials" not in allowed.headers
    refused = api.options("/api/v1/users", headers={"Origin": "http://evil.example", **preflight})
    assert "access-control-allow-origin" not in refused.headers
    simple = api.get("/api/v1/users", headers={"Origin": ORIGIN})
    assert simple.headers["access-control-allow-origin"] == ORIGIN
    assert "x-correlation-id" in simple.headers["access-control-expose-headers"].lower()
    other = api.get("/api/v1/users", headers={"Origin": "http://evil.example"})
    assert "access-control-allow-origin" not in other.headers


def test_the_gateway_refuses_to_start_with_a_short_secret(settings: Settings) -> None:
    weak = with_free_ports(settings).model_copy(update={"jwt_secret": "x" * 31})
    gateway = ServiceProcess("gateway", weak)
    try:
        with pytest.raises(ProcessError, match="exited"):
            gateway.start(timeout=30, probe="/healthz")
        assert "at least 32 bytes" in gateway.log_path.read_text()
    finally:
        gateway.stop()
