"""State transitions used by `evolve`, one small pure function per kind of change.

Each is idempotent: attempt numbers and positions only ever move forward (`max`), and
a terminal status is never left, so folding a replayed event changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from sagas.notification.events import NotificationFellBack, NotificationRequested
from sagas.notification.state import ChannelProgress, NotificationState, RouteProgress, Status

ChannelChange = Callable[[ChannelProgress], ChannelProgress]


def requested(state: NotificationState, event: NotificationRequested) -> NotificationState:
    if state.status != "new":
        return state
    chains = [channel for route in event.routes for channel in route.chain]
    return NotificationState(
        status="collecting" if event.collect_until is not None else "pending",
        collect_until=event.collect_until,
        notification_id=event.notification_id,
        user_id=event.user_id,
        template=event.template,
        data=event.data,
        idempotency_key=event.idempotency_key,
        critical=event.critical,
        deadline=event.deadline,
        max_attempts=event.max_attempts,
        base_delay_ms=event.base_delay_ms,
        max_delay_ms=event.max_delay_ms,
        routes=tuple(RouteProgress(route=route) for route in event.routes),
        channels=tuple(ChannelProgress(channel=c) for c in dict.fromkeys(chains)),
    )


def with_status(
    state: NotificationState, status: Status, *, deferred_until: int | None = None
) -> NotificationState:
    if state.terminal:
        return state
    return replace(state, status=status, deferred_until=deferred_until)


def with_channel(
    state: NotificationState, channel: str, change: ChannelChange
) -> NotificationState:
    channels = tuple(change(p) if p.channel == channel else p for p in state.channels)
    return replace(state, channels=channels)


def started(attempt: int) -> ChannelChange:
    def change(p: ChannelProgress) -> ChannelProgress:
        if p.retry_attempt is not None and p.retry_attempt <= attempt:
            p = replace(p, retry_attempt=None, retry_due_at=None)
        return replace(p, started=max(p.started, attempt))

    return change


def settled(attempt: int, *, delivered: bool) -> ChannelChange:
    def change(p: ChannelProgress) -> ChannelProgress:
        return replace(p, settled=max(p.settled, attempt), delivered=p.delivered or delivered)

    return change


def retry_due(attempt: int, due_at: int) -> ChannelChange:
    def change(p: ChannelProgress) -> ChannelProgress:
        if p.started >= attempt:
            return p
        return replace(p, retry_attempt=attempt, retry_due_at=due_at)

    return change


def fell_back(state: NotificationState, event: NotificationFellBack) -> NotificationState:
    def move(route: RouteProgress) -> RouteProgress:
        chain = route.route.chain
        if event.from_channel not in chain or event.to_channel not in chain:
            return route
        return replace(route, position=max(route.position, chain.index(event.to_channel)))

    return replace(state, routes=tuple(move(r) for r in state.routes))
