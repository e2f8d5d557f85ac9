"""Rate limits on every `/api/v1` route, charged per caller and route class.

The caller is the token's subject, or the client address for a request without a valid
token. The classes, policies and header fields are data in gateway/rate_policies.py.
The gateway's one middleware (gateway.middleware.RequestContext) calls `admit`, which charges
each request one unit before its endpoint runs; the answer then carries `RateLimit-Policy`.
Over budget it answers 429 problem+json with `Retry-After` and `RateLimit` (what is left, and
when the window ends) itself. An ingest
batch then costs one unit per event (`charge_total`, called once its events are counted).

Concurrency caps bound what a caller holds open at once in one gateway process: SSE streams
and trace reads (held by the middleware while the response lasts) and `?after=` waits
(`concurrent`).
Budgets live in `limits` storage (NEXUS_RATE_LIMIT_STORAGE), shared by gateways that share it;
if that storage fails, requests pass: limits protect the service, they must not stop it.
"""

from __future__ import annotations

import math
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass

import structlog
from limits.aio import strategies
from limits.aio.storage import MemoryStorage
from limits.errors import StorageError
from limits.storage import StorageTypes, storage_from_string
from prometheus_client import Counter
from starlette.requests import Request
from starlette.types import Scope

from gateway.auth import TokenVerifier
from gateway.problems import Problem
from gateway.rate_policies import (
    AFTER_WAITS,
    ANONYMOUS,
    API_PREFIX,
    OPEN_STREAMS,
    ROUTES,
    TRACE_READS,
    TRACE_READS_AT_ONCE,
    Policy,
    RouteRule,
    concurrency_policy_field,
    limit_field,
    policies,
)
from infra.config.settings import Settings

log = structlog.get_logger()
REFUSED = Counter("nexus_http_rate_limited_total", "Requests answered 429", ["policy"])
STRATEGY_TYPES: dict[str, type[strategies.RateLimiter]] = {
    "fixed-window": strategies.FixedWindowRateLimiter,
    "moving-window": strategies.MovingWindowRateLimiter,
    "sliding-window-counter": strategies.SlidingWindowCounterRateLimiter,
}
SWEEP_EVERY_S = 1.0


def too_many(code: str, policy: str, detail: str, headers: dict[str, str]) -> Problem:
    """A 429, naming the policy as the draft's quota-exceeded problem type does."""
    REFUSED.labels(policy).inc()
    problem = Problem(429, code, detail, headers=headers)
    problem.extra["violated-policies"] = [policy]
    return problem


class ConcurrencyCap:
    """At most `most` held at once per caller, counted in this process."""

    def __init__(self, name: str, most: int, retry_after_s: int) -> None:
        self.name, self.most, self.retry_after_s = name, most, retry_after_s
        self.held: dict[str, int] = {}

    def acquire(self, key: str) -> None:
        held = self.held.get(key, 0)
        if held >= self.most:
            raise too_many(
                "too-many-concurrent",
                self.name,
                f"at most {self.most} {self.name} at once per caller",
                {
                    "Retry-After": str(self.retry_after_s),
                    "RateLimit-Policy": concurrency_policy_field(self.name, self.most),
                    "RateLimit": limit_field(self.name, 0),
                },
            )
        self.held[key] = held + 1

    def release(self, key: str) -> None:
        left = self.held[key] - 1
        if left:
            self.held[key] = left
        else:
            del self.held[key]

    @contextmanager
    def hold(self, key: str) -> Iterator[None]:
        self.acquire(key)
        try:
            yield
        finally:
            self.release(key)


@dataclass
class Admission:
    """A request's caller, policy and cap, and what its budget had left once refused."""

    key: str  # "sub:<subject>" or "addr:<client address>"
    policy: Policy
    cap: ConcurrencyCap | None
    remaining: int | None = None  # known after a refusal only
    reset_in: int = 0
    holding: bool = False  # its cap is taken, until `release`

    def release(self) -> None:
        if self.holding:
            self.holding = False
            assert self.cap is not None
            self.cap.release(self.key)

    def fields(self) -> list[tuple[bytes, bytes]]:
        fields = [(b"ratelimit-policy", self.policy.field.encode())]
        if self.remaining is not None:
            limit = limit_field(self.policy.name, self.remaining, self.reset_in)
            fields.append((b"ratelimit", limit.encode()))
        return fields

    def refusal(self) -> Problem:
        name, window = self.policy.name, self.policy.window_s
        detail = f"over the {name} limit of {self.policy.item.amount} per {window} s"
        retry = str(max(self.reset_in, 1))  # never before the window's end (the draft's rule)
        return too_many("rate-limited", name, detail, {"Retry-After": retry})


class SweptMemoryStorage(MemoryStorage):
    """limits' memory storage, dropping expired keys at most once every SWEEP_EVERY_S.

    Its own sweep starts again after nearly every hit and walks every key: about 0.5 ms per
    request with 10,000 callers in a window. Counting stays exact without it, as reads
    drop an expired key (and a moving window skips expired entries) themselves."""

    next_sweep = 0.0

    async def _MemoryStorage__schedule_expiry(self) -> None:  # the private hook it calls
        if (now := time.monotonic()) >= self.next_sweep:
            self.next_sweep = now + SWEEP_EVERY_S
            await super()._MemoryStorage__schedule_expiry()  # type: ignore[misc]


def storage(uri: str) -> StorageTypes:
    """The storage of a `limits` URI, async; memory:// is SweptMemoryStorage."""
    uri = uri.removeprefix("async+")
    if uri.startswith("memory://"):
        return SweptMemoryStorage()
    return storage_from_string(f"async+{uri}", wrap_exceptions=True)


class RateLimiter:
    """The budgets, caps and token subjects of one gateway process."""

    def __init__(self, settings: Settings, verifier: TokenVerifier) -> None:
        self.enabled = settings.rate_limit_enabled
        self.policies = policies(settings)
        # Fixed windows by default: a counter per caller, where a moving window of the memory
        # storage keeps one timestamp per unit (10,000 for one full ingest batch).
        strategy = STRATEGY_TYPES[settings.rate_limit_strategy]
        self.strategy = strategy(storage(settings.rate_limit_storage))
        self.verifier = verifier
        wait_s = math.ceil(settings.read_your_writes_timeout_s)
        self.caps = {
            AFTER_WAITS: ConcurrencyCap(AFTER_WAITS, settings.rate_limit_after_waits, wait_s),
            OPEN_STREAMS: ConcurrencyCap(OPEN_STREAMS, settings.rate_limit_open_streams, 5),
            TRACE_READS: ConcurrencyCap(TRACE_READS, TRACE_READS_AT_ONCE, 5),
        }

    def admission(self, scope: Scope, rule: RouteRule) -> Admission:
        cap = self.caps[rule.holds] if rule.holds else None
        if (subject := self._subject(_credentials(scope, rule))) is not None:
            policy, key = self.policies[rule.route_class], f"sub:{subject}"
        else:
            client = scope.get("client")
            policy, key = self.policies[ANONYMOUS], f"addr:{client[0] if client else '-'}"
        return Admission(key, policy, cap)

    def _subject(self, authorization: str | None) -> str | None:
        """The subject of a valid token, which picks the budget. Only that: the endpoint
        still checks the token (remembered by the verifier, so not verified twice)."""
        try:
            return self.verifier.principal(authorization).subject
        except Problem:
            return None

    async def charge(self, admission: Admission, cost: int) -> None:
        """Takes `cost` units from the caller's budget; Problem 429 if it does not have them."""
        policy = admission.policy
        limit = (policy.item, policy.name, admission.key)
        try:
            # A fixed window counts refused hits too: harmless for one unit (its window ends
            # when it would anyway), but a refused batch must not spend events it never sent.
            fits = cost == 1 or await self.strategy.test(*limit, cost=cost)
            if fits and await self.strategy.hit(*limit, cost=cost):
                return
            # Only a refusal reads the window back: it would cost every request a third of
            # the limiter's time, for a RateLimit field that RateLimit-Policy mostly tells.
            stats = await self.strategy.get_window_stats(*limit)
        except StorageError as exc:
            log.warning("rate_limit_storage_failed", error=str(exc))
            return
        admission.remaining = max(stats.remaining, 0)
        admission.reset_in = max(math.ceil(stats.reset_time - time.time()), 0)
        raise admission.refusal()

    async def admit(self, scope: Scope) -> Admission | None:
        """Charges an `/api/v1` request one unit and takes its cap; None when not limited.
        The admission is in scope state before any refusal, so a 429 carries its fields."""
        if not self.enabled or not scope["path"].startswith(API_PREFIX):
            return None
        rule = ROUTES.rule(scope["method"], scope["path"])
        admission = scope["state"]["rate_limit"] = self.admission(scope, rule)
        await self.charge(admission, 1)
        if admission.cap is not None:
            admission.cap.acquire(admission.key)
            admission.holding = True
        return admission

    async def charge_total(self, request: Request, cost: int) -> None:
        """Charges the rest of a request costing `cost` units in all (an ingest batch: one per
        event), `admit` having charged one; 413 if the whole limit is less than `cost`."""
        admission: Admission | None = getattr(request.state, "rate_limit", None)
        if admission is None:  # limits are off
            return
        if cost > (most := admission.policy.item.amount):
            detail = f"this request costs {cost}; the {admission.policy.name} limit is {most}"
            raise Problem(413, "over-rate-limit", detail, limit=most)
        if cost > 1:
            await self.charge(admission, cost - 1)

    def concurrent(self, request: Request, cap: str) -> AbstractContextManager[None]:
        """Holds one of the caller's `cap` while in the block; Problem 429 if all are held."""
        admission: Admission | None = getattr(request.state, "rate_limit", None)
        return nullcontext() if admission is None else self.caps[cap].hold(admission.key)


def _credentials(scope: Scope, rule: RouteRule) -> str | None:
    """The Authorization value the route's endpoint will verify."""
    if rule.query_token and scope["query_string"]:
        query = urllib.parse.parse_qs(scope["query_string"].decode("latin-1"))
        if "access_token" in query:
            return f"Bearer {query['access_token'][0]}"
    for name, value in scope["headers"]:
        if name == b"authorization":
            return str(value.decode("latin-1"))
    return None
