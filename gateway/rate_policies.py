"""What the gateway's rate limits are, as data: route classes, policies, header fields.

Every `/api/v1` request belongs to one route class. ROUTE_RULES names the routes whose class
is not told by their method; any other route is `queries` when read (GET, HEAD) and
`commands` otherwise, so a route added later is limited too. Each class has a policy, a
`limits` item read from NEXUS_RATE_LIMIT_<CLASS>; `anonymous` is the policy of requests
without a valid token, whatever their class. Fields follow draft-ietf-httpapi-ratelimit-
headers-11: `RateLimit-Policy: "commands";q=100;w=1` and `RateLimit: "commands";r=0;t=1`.
Pure: no I/O (gateway/rate_limits.py does the counting).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from limits import RateLimitItem, parse_many
from starlette.routing import compile_path

from gateway.commands import COMMAND_ROUTES
from infra.config.settings import Settings

API_PREFIX = "/api/v1/"
COMMANDS, NOTIFICATIONS, INGEST, EVENTS, QUERIES, STREAMS = (
    "commands", "notifications", "ingest", "events", "queries", "streams",
)  # fmt: skip
ANONYMOUS = "anonymous"
CLASSES = (COMMANDS, NOTIFICATIONS, INGEST, EVENTS, QUERIES, STREAMS)
AFTER_WAITS, OPEN_STREAMS = "after-waits", "open-streams"  # the concurrency caps
# A trace reads the whole log on a worker thread (gateway/traces.py); an operator needs
# one at a time, so a small fixed cap keeps a retrying script from filling the thread pool.
TRACE_READS, TRACE_READS_AT_ONCE = "trace-reads", 2
READS = frozenset({"GET", "HEAD"})


@dataclass(frozen=True)
class RouteRule:
    method: str
    path: str  # a Starlette path template
    route_class: str
    query_token: bool = False  # also takes its token as ?access_token= (EventSource)
    holds: str | None = None  # a concurrency cap held while the response lasts


ROUTE_RULES = (
    *(RouteRule(route.method, route.path, COMMANDS) for route in COMMAND_ROUTES),
    RouteRule("POST", "/api/v1/notifications", NOTIFICATIONS),
    RouteRule("POST", "/api/v1/ingest/event", INGEST),
    RouteRule("POST", "/api/v1/ingest/batch", INGEST),
    RouteRule("POST", "/api/v1/events", EVENTS),  # counted in events, as ingest is
    RouteRule("GET", "/api/v1/analytics/stream", STREAMS, query_token=True, holds=OPEN_STREAMS),
    RouteRule("GET", "/api/v1/traces/{id}", QUERIES, holds=TRACE_READS),
)


class RouteClasses:
    """The rule of a request: by exact path, then by path template, then by method."""

    def __init__(self, rules: tuple[RouteRule, ...]) -> None:
        self.exact = {(r.method, r.path): r for r in rules if "{" not in r.path}
        self.templates = [(r, compile_path(r.path)[0]) for r in rules if "{" in r.path]

    def rule(self, method: str, path: str) -> RouteRule:
        if (found := self.exact.get((method, path))) is not None:
            return found
        for rule, pattern in self.templates:
            if rule.method == method and pattern.match(path):
                return rule
        return RouteRule(method, path, QUERIES if method in READS else COMMANDS)


ROUTES = RouteClasses(ROUTE_RULES)


@dataclass(frozen=True)
class Policy:
    name: str
    item: RateLimitItem

    @property
    def window_s(self) -> int:
        return self.item.get_expiry()

    @cached_property  # sent on every answer
    def field(self) -> str:
        """Its RateLimit-Policy list member."""
        return f'"{self.name}";q={self.item.amount};w={self.window_s}'


def policies(settings: Settings) -> dict[str, Policy]:
    """One policy per route class, and `anonymous`; ValueError naming a bad variable."""
    names = (*CLASSES, ANONYMOUS)
    return {n: Policy(n, _item(n, getattr(settings, f"rate_limit_{n}"))) for n in names}


def _item(name: str, text: str) -> RateLimitItem:
    variable = f"NEXUS_RATE_LIMIT_{name.upper()}"
    try:
        items = parse_many(text)
    except ValueError:
        raise ValueError(f"{variable}={text!r} is not a limit such as 100/second") from None
    if len(items) != 1 or items[0].amount < 1:
        raise ValueError(f"{variable}={text!r} must be one limit of at least 1, as 100/second")
    return items[0]


def limit_field(name: str, remaining: int, reset_in: int | None = None) -> str:
    """A RateLimit list member: what is left of a policy, and for how many more seconds."""
    return f'"{name}";r={remaining}' + ("" if reset_in is None else f";t={reset_in}")


def concurrency_policy_field(name: str, most: int) -> str:
    """A RateLimit-Policy list member for a cap on requests in flight (no window)."""
    return f'"{name}";q={most};qu="concurrent-requests"'
