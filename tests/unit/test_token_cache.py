"""The verifier's cache of verified tokens: each is verified once, remembered no longer than
PyJWT would accept it, within a bounded size, and never when it failed a check."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import jwt
import pytest

from gateway.auth import TokenVerifier
from gateway.problems import Problem

SECRET = "unit-secret-0123456789-0123456789"
LEEWAY_S = 30


class Clock:
    """Epoch seconds that a test moves on; PyJWT is moved along with it."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.offset = 0.0
        clock = self

        class Shifted(datetime):
            @classmethod
            def now(cls, tz: Any = None) -> Shifted:
                return cls.fromtimestamp(time.time() + clock.offset, tz)

        monkeypatch.setattr(jwt.api_jwt, "datetime", Shifted)

    def __call__(self) -> float:
        return time.time() + self.offset


class Counting(TokenVerifier):
    """Counts the tokens that reach PyJWT."""

    checked = 0

    def _claims(self, token: str) -> dict[str, Any]:
        self.checked += 1
        return super()._claims(token)


def verifier(clock: Clock | None = None, cache_size: int = 8) -> Counting:
    extra: dict[str, Any] = {"clock": clock} if clock else {}
    return Counting(SECRET, "nexus", "nexus-api", leeway_s=LEEWAY_S, cache_size=cache_size, **extra)


def bearer(subject: str = "ann", ttl_s: int = 60, secret: str = SECRET) -> str:
    now = int(time.time())
    claims = {"sub": subject, "iss": "nexus", "aud": "nexus-api", "iat": now, "exp": now + ttl_s}
    return "Bearer " + jwt.encode({**claims, "scope": "users:write"}, secret, "HS256")


def refusal(check: TokenVerifier, header: str) -> tuple[int, str]:
    with pytest.raises(Problem) as caught:
        check.principal(header)
    return caught.value.status, caught.value.code


def test_a_token_is_verified_once_and_answers_the_same_principal() -> None:
    check, header = verifier(), bearer()
    first = check.principal(header)
    assert [check.principal(header) for _ in range(3)] == [first] * 3
    assert first.subject == "ann" and first.scopes == {"users:write"}
    assert check.checked == 1


def test_an_expired_token_is_refused_once_past_its_leeway(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock(monkeypatch)
    check, header = verifier(clock), bearer(ttl_s=60)
    check.principal(header)
    clock.offset = 60 + LEEWAY_S - 2  # within the leeway: still the remembered principal
    assert check.principal(header).subject == "ann" and check.checked == 1
    clock.offset = 60 + LEEWAY_S + 1
    assert refusal(check, header) == (401, "expired-token")
    assert check.checked == 2 and len(check.verified) == 0


def test_the_cache_holds_at_most_its_size_dropping_the_least_recent() -> None:
    check = verifier(cache_size=2)
    ann, bob, cid = (bearer(s) for s in ("ann", "bob", "cid"))
    for header in (ann, bob, ann, cid):  # bob is the least recently used when cid comes
        check.principal(header)
    assert len(check.verified) == 2 and check.checked == 3
    check.principal(ann)
    assert check.checked == 3
    check.principal(bob)
    assert check.checked == 4


def test_a_token_with_a_bad_signature_is_never_cached() -> None:
    check = verifier()
    forged = bearer(secret="another-secret-0123456789-01234567")
    for _ in range(2):
        assert refusal(check, forged) == (401, "invalid-token")
    assert check.checked == 2 and len(check.verified) == 0
    # The same claims, signed right, pass: the refusal was not remembered either.
    assert check.principal(bearer()).subject == "ann"
