"""Bearer JWT checks (PyJWT): HS256 only; exp, iss, aud and sub are required, lifetimes bounded.

A token that passed is remembered (cachetools) until its `exp` plus the leeway, the moment
PyJWT would refuse it, so each token is verified once rather than on every request."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import jwt
from cachetools import TLRUCache

from aggregates.actor import USERS_ADMIN, WORKSPACES_ADMIN
from gateway.problems import Problem
from schemas.tracking import INGEST

if TYPE_CHECKING:
    from infra.config.settings import Settings

ALGORITHM = "HS256"
MIN_SECRET_BYTES = 32  # RFC 7518 3.2: an HS256 key at least as long as the hash output
MAX_TOKEN_CHARS = 8192  # far above any token issued here; bounds what PyJWT decodes
DEFAULT_MAX_TTL_S = 24 * 3600
DEFAULT_LEEWAY_S = 30
# Tokens remembered at once; the least recently used goes first. Callers, not requests.
DEFAULT_CACHE_SIZE = 4096
DEFAULT_SCOPES = (
    "users:read",
    "users:write",
    "workspaces:read",
    "workspaces:write",
    "commands:read",
    "notifications:read",
    "notifications:write",
    "analytics:write",
    "analytics:read",
)
NOTIFY_ANYONE, READ_SAGAS = "notifications:send", "sagas:read"
READ_TRACES = "ops:read"  # a request's causal chain from the log, whoever's it is
PUBLISH_EVENTS = "events:publish"  # services writing domain events of their own over HTTP
# Act on what belongs to others; `nexus token --scope` grants them, never by default.
# What each allows is the README's scope table (tests/unit/test_scopes_documented.py).
OPERATOR_SCOPES = (
    USERS_ADMIN, WORKSPACES_ADMIN, NOTIFY_ANYONE, READ_SAGAS, INGEST, READ_TRACES, PUBLISH_EVENTS,
)  # fmt: skip


@dataclass(frozen=True)
class Principal:
    subject: str
    scopes: frozenset[str]

    def require(self, scope: str) -> None:
        if scope not in self.scopes:
            raise Problem(403, "insufficient-scope", f"this needs the scope {scope}")


class TokenVerifier:
    """Checks and issues HS256 tokens.

    Refuses a secret under MIN_SECRET_BYTES, and any token whose lifetime (exp - iat, or
    exp - now without iat) is longer than `max_ttl_s`, so a leaked token is useful for a
    bounded time. `leeway_s` tolerates that much clock skew on exp, iat and nbf.
    Only tokens that passed every check are remembered, at most `cache_size` of them, each
    until `exp + leeway_s`: past that it is checked again, and refused as expired.
    """

    def __init__(
        self,
        secret: str,
        issuer: str,
        audience: str,
        *,
        max_ttl_s: int = DEFAULT_MAX_TTL_S,
        leeway_s: int = DEFAULT_LEEWAY_S,
        cache_size: int = DEFAULT_CACHE_SIZE,
        clock: Callable[[], float] = time.time,  # epoch seconds, as PyJWT reads them
    ) -> None:
        if len(secret.encode()) < MIN_SECRET_BYTES:
            raise ValueError(f"the JWT secret must have at least {MIN_SECRET_BYTES} bytes")
        self.secret, self.issuer, self.audience = secret, issuer, audience
        self.max_ttl_s, self.leeway_s = max_ttl_s, leeway_s
        # token -> (its principal, when PyJWT would start refusing it)
        self.verified: TLRUCache[str, tuple[Principal, float]] = TLRUCache(
            cache_size, ttu=_valid_until, timer=clock
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> TokenVerifier:
        return cls(
            settings.resolved_jwt_secret(),
            settings.jwt_issuer,
            settings.jwt_audience,
            max_ttl_s=settings.jwt_max_ttl_s,
            leeway_s=settings.jwt_leeway_s,
        )

    def principal(self, authorization: str | None) -> Principal:
        if not authorization:
            raise _unauthorized("missing-token", "an Authorization: Bearer token is required")
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise _unauthorized("missing-token", "the Authorization header must be Bearer")
        if len(token) > MAX_TOKEN_CHARS:
            detail = f"the token is longer than {MAX_TOKEN_CHARS} characters"
            raise _unauthorized("invalid-token", detail)
        if (known := self.verified.get(token)) is not None:
            return known[0]
        claims = self._claims(token)
        principal = Principal(str(claims["sub"]), frozenset(str(claims.get("scope", "")).split()))
        # PyJWT refuses once exp <= now - leeway; _claims made exp a finite number.
        self.verified[token] = (principal, float(claims["exp"]) + self.leeway_s)
        return principal

    def _claims(self, token: str) -> dict[str, Any]:
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self.secret,
                algorithms=[ALGORITHM],
                issuer=self.issuer,
                audience=self.audience,
                leeway=self.leeway_s,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
            lifetime = int(claims["exp"]) - int(claims.get("iat", time.time()))
        except jwt.ExpiredSignatureError:
            raise _unauthorized("expired-token", "the token has expired") from None
        except jwt.InvalidTokenError as exc:
            raise _unauthorized("invalid-token", f"the token is not valid: {exc}") from None
        # PyJWT lets these through: RecursionError from a deeply nested header (parsed before
        # the signature is checked), OverflowError for an exp of 1e999, TypeError for iat null.
        except (RecursionError, OverflowError, TypeError, ValueError):
            raise _unauthorized("invalid-token", "the token is not valid JSON claims") from None
        if lifetime > self.max_ttl_s:
            detail = f"the token lives longer than {self.max_ttl_s} s; get a shorter-lived one"
            raise _unauthorized("invalid-token", detail)
        return claims

    def issue(self, subject: str, scopes: list[str], ttl_seconds: int = 3600) -> str:
        """A token for `subject`; ValueError for a lifetime outside 1 to max_ttl_s seconds."""
        if not 0 < ttl_seconds <= self.max_ttl_s:
            limit = f"1 to {self.max_ttl_s} seconds (NEXUS_JWT_MAX_TTL_S)"
            raise ValueError(f"a token lives {limit}, not {ttl_seconds}")
        now = int(time.time())
        claims = {
            "sub": subject,
            "iss": self.issuer,
            "aud": self.audience,
            "iat": now,
            "exp": now + ttl_seconds,
            "scope": " ".join(scopes),
        }
        return jwt.encode(claims, self.secret, algorithm=ALGORITHM)


def _valid_until(_token: str, verified: tuple[Principal, float], _now: float) -> float:
    return verified[1]


def _unauthorized(code: str, detail: str) -> Problem:
    return Problem(401, code, detail, headers={"WWW-Authenticate": 'Bearer realm="nexus"'})
