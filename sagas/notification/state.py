"""State of one notification saga, folded from its events.

Progress is tracked with attempt numbers rather than counters, so folding the same
event twice (an at-least-once replay) leaves the state unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sagas.notification.events import DigestItem, RenderedContent, Route

# A digest is "collecting" until its window ends; a notification folded into one is "digested".
Status = Literal["new", "collecting", "pending", "deferred", "completed", "given_up", "digested"]
TERMINAL: frozenset[Status] = frozenset({"completed", "given_up", "digested"})


@dataclass(frozen=True)
class ChannelProgress:
    """`started` is the highest attempt begun, `settled` the highest with an outcome."""

    channel: str
    started: int = 0
    settled: int = 0
    delivered: bool = False
    retry_attempt: int | None = None
    retry_due_at: int | None = None

    @property
    def in_flight(self) -> bool:
        return self.started > self.settled


@dataclass(frozen=True)
class RouteProgress:
    route: Route
    position: int = 0

    @property
    def channel(self) -> str:
        return self.route.chain[self.position]

    def next_channel(self) -> str | None:
        following = self.position + 1
        return self.route.chain[following] if following < len(self.route.chain) else None


@dataclass(frozen=True)
class NotificationState:
    status: Status = "new"
    notification_id: str = ""
    user_id: str = ""
    template: str = ""
    data: str = "{}"
    idempotency_key: str | None = None
    critical: bool = False
    deadline: int = 0
    max_attempts: int = 0
    base_delay_ms: int = 0
    max_delay_ms: int = 0
    routes: tuple[RouteProgress, ...] = ()
    channels: tuple[ChannelProgress, ...] = ()
    contents: tuple[RenderedContent, ...] = ()
    deferred_until: int | None = None
    collect_until: int | None = None
    digest_items: tuple[DigestItem, ...] = ()

    @property
    def rendered(self) -> bool:
        return bool(self.contents)

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    def progress(self, channel: str) -> ChannelProgress | None:
        return next((p for p in self.channels if p.channel == channel), None)

    def route_of(self, channel: str) -> RouteProgress | None:
        return next((r for r in self.routes if channel in r.route.chain), None)

    def content_ref(self, channel: str) -> str:
        return next((c.content_ref for c in self.contents if c.channel == channel), "")

    def all_delivered(self) -> bool:
        delivered = {p.channel for p in self.channels if p.delivered}
        return bool(self.routes) and all(delivered & set(r.route.chain) for r in self.routes)


initial_state = NotificationState()
