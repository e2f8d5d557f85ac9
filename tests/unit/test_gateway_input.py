"""Bounded, linear input handling at the gateway's edge: every refusal is a 4xx, never a 500.

Pure functions, plus the two ASGI middlewares around a toy route (in process, no I/O).
"""

from __future__ import annotations

import argparse
import base64
import random
import time
from pathlib import Path

import httpx
import jwt
import pytest
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.app import middleware
from gateway.auth import MAX_TOKEN_CHARS, TokenVerifier
from gateway.dispatch import checked_id, expected_version
from gateway.input_bounds import MAX_JSON_DEPTH, ascii_int, json_refusal, query_limit
from gateway.middleware import RequestContext
from gateway.problems import Problem
from infra.cli.tools import token
from infra.config.settings import Settings

SECRET = "unit-secret-0123456789-0123456789"


def _problem(call: object, *args: object) -> Problem:
    with pytest.raises(Problem) as caught:
        call(*args)  # type: ignore[operator]
    return caught.value


NOT_LIMITS = ["²", "٣", "１", "9" * 5000, "0", "501", "-1", "+5", " 5", "", "5\n"]


@pytest.mark.parametrize("raw", NOT_LIMITS)
def test_a_limit_that_is_not_1_to_max_in_ascii_digits_is_400(raw: str) -> None:
    problem = _problem(query_limit, raw, 50, 500)
    assert (problem.status, problem.code) == (400, "invalid-limit")


def test_limits_in_range_and_the_default() -> None:
    assert query_limit(None, 50, 500) == 50
    assert [query_limit(raw, 50, 500) for raw in ("1", "500", "0007")] == [1, 500, 7]
    assert ascii_int("12", 2) == 12 and ascii_int("123", 2) is None and ascii_int("²", 5) is None


@pytest.mark.parametrize(
    "header", ['"' + "9" * 5000 + '"', '"' + "9" * 19 + '"', '"٣"', '"7"\n', "7", 'W/"7"', '"-1"']
)
def test_if_match_past_18_ascii_digits_is_400(header: str) -> None:
    problem = _problem(expected_version, header)
    assert (problem.status, problem.code) == (400, "invalid-if-match")


def test_if_match_of_18_digits_is_a_version() -> None:
    assert expected_version('"' + "9" * 18 + '"') == 10**18 - 1
    assert expected_version(' "3" ') == 3


@pytest.mark.parametrize("value", ["abc\n", "a" * 129, "", "-a", "a b", "ä", 7, None])
def test_ids_match_whole_strings_only(value: object) -> None:
    problem = _problem(checked_id, value, "/user_id")
    assert (problem.status, problem.code) == (422, "invalid-id")


def test_ids_up_to_128_characters_pass() -> None:
    assert checked_id("a" * 128, "/id") == "a" * 128
    assert checked_id("u-1.x:y_z", "/id") == "u-1.x:y_z"


def nested(depth: int) -> str:
    return '{"a":' * (depth - 1) + "[1]" + "}" * (depth - 1)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (nested(MAX_JSON_DEPTH + 1), "deeper than 32"),
        ("[" * 100_000, "deeper than 32"),
        ('{"n": ' + "1" * 5000 + "}", "more than 100 digits"),
        ('{"n": NaN}', "NaN"),
        ("[-Infinity]", "NaN and Infinity"),
        ('{"name": "A\\u0000B"}', "U+0000"),
        ('{"\\u0000": 1}', "U+0000"),
        ('{"name": "\\ud83d"}', "lone surrogate"),
        ('{"name": "\\ude00\\ud83d"}', "lone surrogate"),
    ],
)
def test_json_past_the_bounds_is_refused_with_a_reason(text: str, reason: str) -> None:
    refusal = json_refusal(text)
    assert refusal is not None and reason in refusal


@pytest.mark.parametrize(
    "text",
    [
        nested(MAX_JSON_DEPTH),
        '{"a": "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["}',
        '{"quote": "\\"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["}',
        '{"text": "NaN Infinity ' + "1" * 500 + '"}',
        '{"escaped": "\\\\u0000", "emoji": "\\ud83d\\ude00", "e": "\\u00e9"}',
        '{"n": 1.5e300, "m": -' + "9" * 100 + "}",
    ],
)
def test_json_within_the_bounds_passes(text: str) -> None:
    assert json_refusal(text) is None


@pytest.mark.parametrize(
    "text",
    ['"' + '\\"' * 500_000, "[" * 1_000_000, '"a",' * 250_000, '"\\ud83d\\ude00' * 150_000],
)
def test_json_checks_take_linear_time(text: str) -> None:
    started = time.perf_counter()
    json_refusal(text)
    # A check that backtracked from each quote to the end would take hours on these.
    assert time.perf_counter() - started < 3.0


def verifier(max_ttl_s: int = 3600, leeway_s: int = 30) -> TokenVerifier:
    return TokenVerifier(SECRET, "nexus", "nexus-api", max_ttl_s=max_ttl_s, leeway_s=leeway_s)


def bearer(**claims: object) -> str:
    now = int(time.time())
    defaults = {"sub": "a", "iss": "nexus", "aud": "nexus-api", "iat": now, "exp": now + 60}
    return "Bearer " + jwt.encode({**defaults, **claims}, SECRET, "HS256")


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def nested_header_token() -> str:
    # PyJWT parses the header before it checks the signature: no secret needed for this.
    header = b64(b'{"alg":"HS256","x":' + b"[" * 1500 + b"]" * 1500 + b"}")
    return f"Bearer {header}.{b64(b'{}')}.{b64(b'x' * 32)}"


def test_tokens_living_longer_than_the_max_are_401() -> None:
    now = int(time.time())
    assert verifier().principal(bearer(exp=now + 3600)).subject == "a"
    no_iat = {"sub": "a", "iss": "nexus", "aud": "nexus-api", "exp": now + 7200}
    too_long = {
        "exp - iat": bearer(exp=now + 3601),
        "issued long ago": bearer(iat=now - 7200, exp=now + 60),
        "exp - now, no iat": "Bearer " + jwt.encode(no_iat, SECRET, "HS256"),
    }
    for case, header in too_long.items():
        problem = _problem(verifier().principal, header)
        assert (problem.status, problem.code) == (401, "invalid-token"), case


def test_clock_leeway_applies_to_exp_and_iat() -> None:
    now = int(time.time())
    assert verifier().principal(bearer(exp=now - 10)).subject == "a"
    assert verifier().principal(bearer(iat=now + 10)).subject == "a"
    expired = _problem(verifier().principal, bearer(exp=now - 60))
    assert (expired.status, expired.code) == (401, "expired-token")
    assert _problem(verifier(leeway_s=0).principal, bearer(exp=now - 10)).status == 401


@pytest.mark.parametrize(
    "header",
    [
        nested_header_token(),
        "Bearer " + "a" * (MAX_TOKEN_CHARS + 1),
        bearer(exp=float("inf")),
        bearer(iat=None),
        bearer(iat="soon"),
        "Bearer \xff\xfe.\x00.\u2028",
        "Bearer " + "²" * 100,
    ],
)
def test_odd_tokens_are_401_not_500(header: str) -> None:
    problem = _problem(verifier().principal, header)
    assert (problem.status, problem.code) == (401, "invalid-token")


def test_short_secrets_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 32 bytes"):
        TokenVerifier("s" * 31, "nexus", "nexus-api")


def test_tokens_are_issued_up_to_the_max_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = Settings(home=tmp_path, jwt_secret=SECRET, jwt_max_ttl_s=600)
    args = argparse.Namespace(sub="ops", scope=["users:read"], ttl=601)
    assert token(args, settings) == 2
    assert "1 to 600 seconds" in capsys.readouterr().err
    assert token(argparse.Namespace(sub="ops", scope=["users:read"], ttl=600), settings) == 0
    issued = capsys.readouterr().out.strip()
    assert TokenVerifier.from_settings(settings).principal(f"Bearer {issued}").subject == "ops"
    with pytest.raises(ValueError):
        verifier().issue("a", [], ttl_seconds=0)


def test_cors_is_an_allow_list_and_off_by_default(tmp_path: Path) -> None:
    off: list[object] = [layer.cls for layer in middleware(Settings(home=tmp_path))]
    assert CORSMiddleware not in off
    on = Settings(home=tmp_path, cors_origins="https://app.example, http://localhost:5173/")
    assert on.allowed_origins == ["https://app.example", "http://localhost:5173"]
    layers: list[object] = [layer.cls for layer in middleware(on)]
    assert CORSMiddleware in layers
    for bad in ("*", "https://app.example/path", "app.example", "https://a.example,*"):
        with pytest.raises(ValidationError):
            Settings(home=tmp_path, cors_origins=bad)


async def _hello(request: Request) -> Response:
    return JSONResponse({"correlation_id": request.state.correlation_id})


async def _cached(request: Request) -> Response:
    return Response("static", headers={"Cache-Control": "max-age=60"})


def toy_client() -> httpx.AsyncClient:
    app = Starlette(
        routes=[Route("/hello", _hello), Route("/cached", _cached)],
        middleware=[Middleware(RequestContext)],
    )
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


@pytest.mark.parametrize("given", [b"\xff\xfe", b"a" * 129, b"a b", b"id\x00", "ü".encode()])
async def test_a_bad_correlation_id_is_a_400_problem(given: bytes) -> None:
    async with toy_client() as client:
        response = await client.get("/hello", headers={b"X-Correlation-Id": given})
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "invalid-correlation-id"
    assert response.headers["x-correlation-id"].encode() != given  # a fresh one
    assert response.headers["x-content-type-options"] == "nosniff"


async def test_good_correlation_ids_are_kept_and_missing_ones_made() -> None:
    async with toy_client() as client:
        kept = await client.get("/hello", headers={"X-Correlation-Id": "req-1.a:b_c"})
        made = await client.get("/hello")
    assert kept.json()["correlation_id"] == kept.headers["x-correlation-id"] == "req-1.a:b_c"
    assert made.status_code == 200 and len(made.headers["x-correlation-id"]) == 36


async def test_control_characters_in_path_or_query_are_400() -> None:
    async with toy_client() as client:
        for url in ("/hello%00", "/hello?cursor=%00", "/hello?a=%0A", "/hello?%1f=x"):
            response = await client.get(url)
            assert response.status_code == 400, url
            assert response.json()["code"] == "invalid-request-target"


async def test_every_answer_has_nosniff_and_no_store_unless_it_set_its_own() -> None:
    async with toy_client() as client:
        answers = [await client.get(path) for path in ("/hello", "/missing", "/cached")]
    assert all(a.headers["x-content-type-options"] == "nosniff" for a in answers)
    assert [a.headers["cache-control"] for a in answers] == ["no-store", "no-store", "max-age=60"]


@pytest.mark.parametrize(
    "params",
    [{"to": "0001-01-01T00:00:00"}, {"from": "0001-01-01T00:00:00+01:00"}, {"to": "9999-12-31"}],
)
def test_analytics_dates_near_the_ends_of_time_are_400(params: dict[str, str]) -> None:
    from datetime import UTC, datetime

    from gateway.analytics import analytics_span
    from gateway.problems import Problem

    with pytest.raises(Problem) as info:
        analytics_span(params, datetime(2026, 1, 1, tzinfo=UTC))
    assert (info.value.status, info.value.code) == (400, "invalid-range")


def test_the_split_on_quotes_strips_strings_exactly_as_the_regex_does() -> None:
    from gateway.input_bounds import _STRING, _outside_strings

    draw = random.Random(13)
    texts = ['"', '"open', '["[[[", 1]', 'a"b\\"c"d', '{"a":"b"}"', *(
        "".join(draw.choice('ab"[]{}1\\ ') for _ in range(draw.randint(0, 14)))
        for _ in range(5_000)
    )]  # fmt: skip
    for text in texts:
        assert _outside_strings(text) == _STRING.sub('""', text), text
