"""Bearer JWT checks (PyJWT): HS256 only; exp, iss and aud are required."""

from __future__ import annotations

import time
from dataclasses import dataclass

import jwt

from gateway.problems import Problem

ALGORITHM = "HS256"
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
# Not given by default (`nexus token --scope` grants them): notifications:send notifies any
# user and reads any user's notifications; sagas:read reads every saga and its history.


@dataclass(frozen=True)
class Principal:
    subject: str
    scopes: frozenset[str]

    def require(self, scope: str) -> None:
        if scope not in self.scopes:
            raise Problem(403, "insufficient-scope", f"this needs the scope {scope}")


class TokenVerifier:
    def __init__(self, secret: str, issuer: str, audience: str) -> None:
        self.secret, self.issuer, self.audience = secret, issuer, audience

    def principal(self, authorization: str | None) -> Principal:
        if not authorization:
            raise _unauthorized("missing-token", "an Authorization: Bearer token is required")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise _unauthorized("missing-token", "the Authorization header must be Bearer")
        try:
            claims = jwt.decode(
                token.strip(),
                self.secret,
                algorithms=[ALGORITHM],
                issuer=self.issuer,
                audience=self.audience,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise _unauthorized("expired-token", "the token has expired") from None
        except jwt.InvalidTokenError as exc:
            raise _unauthorized("invalid-token", f"the token is not valid: {exc}") from None
        return Principal(str(claims["sub"]), frozenset(str(claims.get("scope", "")).split()))

    def issue(self, subject: str, scopes: list[str], ttl_seconds: int = 3600) -> str:
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


def _unauthorized(code: str, detail: str) -> Problem:
    return Problem(401, code, detail, headers={"WWW-Authenticate": 'Bearer realm="nexus"'})
