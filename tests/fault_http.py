"""Test helper: the HTTP client of every fault test, which accounts for each answer that is
not a 2xx.

A fault may cost a request only what its test names in `allowed`: say a 503 while the
broker is away, or no answer at all (NO_ANSWER: a connection error or a timeout) while the
gateway itself is killed. Such a request is counted in `failures` and sent again, for at
most `patience_s`; anything else (a 4xx, a 500, no answer from a gateway nobody killed, or
an allowed failure that outlasts the patience) fails the test at once, naming the request
and the answer. A fault test asserts `failures` afterwards, and so reports what it cost.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Collection
from contextlib import asynccontextmanager
from typing import Any

import httpx

from gateway.auth import TokenVerifier
from infra.config.settings import Settings

NO_ANSWER = 0  # the status counted for a request that got no answer
PATIENCE_S = 120.0  # longer than any outage a fault test injects, well inside its timeout
PAUSE_S = 0.2


class Unaccounted(AssertionError):
    """An answer the fault under test does not explain."""


class FaultClient:
    """Sends requests until a 2xx, retrying only the failures in `allowed`."""

    def __init__(
        self, client: httpx.AsyncClient, allowed: Collection[int], patience_s: float = PATIENCE_S
    ) -> None:
        self.client, self.allowed, self.patience_s = client, frozenset(allowed), patience_s
        self.failures: Counter[int] = Counter()  # status (NO_ANSWER for none) -> count
        self.answers: list[tuple[float, int]] = []  # (monotonic time, status), every attempt

    async def send(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        headers: Callable[[int], dict[str, str]] = lambda attempt: {},
        pace: Callable[[], float] | None = None,
        give_up: Callable[[], bool] = lambda: False,
    ) -> httpx.Response | None:
        """The 2xx answer; None when `give_up()` turned true while failures were retried.
        `headers(attempt)` gives each attempt's headers; `pace()`, the seconds to wait before
        each attempt (by default PAUSE_S before each retry)."""
        started, attempt = time.monotonic(), 0
        while True:
            await asyncio.sleep(pace() if pace is not None else (PAUSE_S if attempt else 0.0))
            if attempt and give_up():
                return None
            response = await self._once(method, path, json, headers(attempt))
            if response is not None and response.is_success:
                return response
            self._account(method, path, response, attempt, started)
            attempt += 1

    async def _once(
        self, method: str, path: str, body: Any, headers: dict[str, str]
    ) -> httpx.Response | None:
        try:
            response = await self.client.request(method, path, json=body, headers=headers)
        except httpx.TransportError as exc:
            if NO_ANSWER not in self.allowed:
                raise Unaccounted(f"{method} {path}: no answer ({exc!r})") from exc
            response = None
        status = NO_ANSWER if response is None else response.status_code
        self.answers.append((time.monotonic(), status))
        return response

    def _account(
        self,
        method: str,
        path: str,
        response: httpx.Response | None,
        attempt: int,
        started: float,
    ) -> None:
        """Counts an allowed failure; raises on any other, or when retries ran out."""
        status = NO_ANSWER if response is None else response.status_code
        answer = "no answer" if response is None else f"{status} {response.text[:300]}"
        if status not in self.allowed:
            raise Unaccounted(f"{method} {path}: answered {answer}; allowed {self.allowed_text}")
        self.failures[status] += 1
        if (waited := time.monotonic() - started) > self.patience_s:
            raise Unaccounted(
                f"{method} {path}: still {answer} after {attempt + 1} attempts over"
                f" {waited:.0f} s (patience {self.patience_s:g} s)"
            )

    @property
    def allowed_text(self) -> str:
        names = sorted("no answer" if s == NO_ANSWER else str(s) for s in self.allowed)
        return ", ".join(names) or "nothing"


@asynccontextmanager
async def fault_client(
    settings: Settings,
    scopes: list[str],
    allowed: Collection[int],
    *,
    connections: int,
    subject: str = "fault",
) -> AsyncIterator[FaultClient]:
    """A FaultClient for the gateway with a token for `subject` holding `scopes`."""
    verifier = TokenVerifier(
        settings.resolved_jwt_secret(), settings.jwt_issuer, settings.jwt_audience
    )
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{settings.gateway_port}",
        headers={"Authorization": "Bearer " + verifier.issue(subject, scopes)},
        timeout=60,
        # Drop idle connections well before uvicorn does (5 s), or a request may race its close.
        limits=httpx.Limits(max_connections=connections, keepalive_expiry=1.0),
    ) as client:
        yield FaultClient(client, allowed)
