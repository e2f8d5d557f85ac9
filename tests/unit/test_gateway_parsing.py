"""Header parsing and token checks at the edge of the gateway."""

from __future__ import annotations

import time
from collections.abc import Callable

import jwt
import pytest

from gateway.auth import TokenVerifier
from gateway.dispatch import expected_version, requested_wait
from gateway.problems import Problem

SECRET = "unit-secret-0123456789-0123456789"


def verifier() -> TokenVerifier:
    return TokenVerifier(SECRET, "nexus", "nexus-api")


@pytest.mark.parametrize(
    ("prefer", "wait"),
    [
        (None, None),
        ("respond-async", None),
        ("wait=5", 5.0),
        ("respond-async, wait=2.5", 2.5),
        ("wait=600", 30.0),
    ],
)
def test_prefer_wait(prefer: str | None, wait: float | None) -> None:
    assert requested_wait(prefer) == wait


def test_if_match() -> None:
    assert expected_version('"7"') == 7
    assert expected_version(None) is None
    assert expected_version("*") is None
    with pytest.raises(Problem) as caught:
        expected_version("7")
    assert caught.value.status == 400


def test_issued_token_round_trips_with_scopes() -> None:
    principal = verifier().principal("Bearer " + verifier().issue("alice", ["users:read"]))
    assert principal.subject == "alice"
    assert principal.scopes == frozenset({"users:read"})
    with pytest.raises(Problem) as caught:
        principal.require("users:write")
    assert caught.value.status == 403


def _claims(**over: object) -> dict[str, object]:
    now = int(time.time())
    return {"sub": "a", "iss": "nexus", "aud": "nexus-api", "exp": now + 60, **over}


BAD_HEADERS: dict[str, tuple[Callable[[], str | None], str]] = {
    "none": (lambda: None, "missing-token"),
    "basic": (lambda: "Basic abc", "missing-token"),
    "expired": (lambda: _bearer(_claims(exp=int(time.time()) - 60)), "expired-token"),
    "wrong-audience": (lambda: _bearer(_claims(aud="other")), "invalid-token"),
    "wrong-issuer": (lambda: _bearer(_claims(iss="evil")), "invalid-token"),
    "wrong-key": (
        lambda: _bearer(_claims(), "another-secret-0123456789-0123456789"),
        "invalid-token",
    ),
    "alg-none": (lambda: "Bearer " + jwt.encode(_claims(), None, "none"), "invalid-token"),
    "no-exp": (
        lambda: _bearer({k: v for k, v in _claims().items() if k != "exp"}),
        "invalid-token",
    ),
    "garbage": (lambda: "Bearer not.a.jwt", "invalid-token"),
}


def _bearer(claims: dict[str, object], key: str = SECRET) -> str:
    return "Bearer " + jwt.encode(claims, key, "HS256")


@pytest.mark.parametrize("case", sorted(BAD_HEADERS))
def test_bad_tokens_are_401(case: str) -> None:
    make_header, code = BAD_HEADERS[case]
    with pytest.raises(Problem) as caught:
        verifier().principal(make_header())
    assert (caught.value.status, caught.value.code) == (401, code)
