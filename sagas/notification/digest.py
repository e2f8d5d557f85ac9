"""Digests: low-priority notifications of one user collapse into one message per window.

A notification whose template is marked `digest` is not sent alone: its saga ends as
`digested`, naming the digest of its user and window. The digest is a notification saga
of its own, with the digest template, that collects items until its window ends and then
renders and delivers like any other. A window that would end in the user's quiet hours
is drawn out until they end, so the quiet period collects into one digest. An item that
reaches a digest already closed (the worker was behind) is forwarded to the digest open
at that moment, so none is lost.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import replace

from aggregates.user.events import QuietHours
from sagas.notification.commands import CollectDigestItem, StartNotification
from sagas.notification.events import (
    DigestItem,
    NotificationDigestClosed,
    NotificationDigested,
    NotificationDigestItemAdded,
    NotificationDigestItemForwarded,
    NotificationEvent,
    NotificationGivenUp,
    NotificationRequested,
)
from sagas.notification.policy import quiet_hours_end, resolve_routes
from sagas.notification.state import NotificationState

DIGEST_NAMESPACE = uuid.UUID("9f5e2c1a-4d3b-4e8f-a6b7-0c1d2e3f4a5b")


def window_end(at: int, window_ms: int) -> int:
    """The end of the window (aligned to the epoch) that `at` falls in."""
    return at - at % window_ms + window_ms


def digest_end(at: int, window_ms: int, quiet_hours: QuietHours | None) -> int:
    """When the digest that `at` falls into closes: its window's end, unless that is in the
    user's quiet hours, then when they end (so a quiet period makes one digest)."""
    end = window_end(at, window_ms)
    if quiet_hours is None:
        return end
    return quiet_hours_end(quiet_hours, end) or end


def digest_id(user_id: str, end: int) -> str:
    """One digest per user and window: the same id wherever it is computed."""
    return str(uuid.uuid5(DIGEST_NAMESPACE, f"{user_id}/{end}"))


def digested(command: StartNotification, window_ms: int) -> NotificationDigested:
    end = digest_end(command.requested_at, window_ms, command.quiet_hours)
    return NotificationDigested(
        digest_id=digest_id(command.user_id, end),
        window_end=end,
        summary=command.digest_summary,
    )


def collect(state: NotificationState, command: CollectDigestItem) -> list[NotificationEvent]:
    item = command.item
    if state.status == "new":
        return [_opened(command), NotificationDigestItemAdded(item=item)]
    if any(i.notification_id == item.notification_id for i in state.digest_items):
        return []  # a redelivered item
    if state.status == "collecting":
        return [NotificationDigestItemAdded(item=item)]
    end = digest_end(command.received_at, command.window_ms, command.quiet_hours)
    return [
        NotificationDigestItemForwarded(
            item=item, digest_id=digest_id(command.user_id, end), window_end=end
        )
    ]


def close(state: NotificationState) -> list[NotificationEvent]:
    if state.status != "collecting":
        return []  # a duplicate timer
    done = NotificationDigestClosed(items=len(state.digest_items))
    return [done] if state.routes else [done, NotificationGivenUp(reason="no_channels")]


def closed(state: NotificationState) -> NotificationState:
    """Collecting ends: the items become the digest template's data."""
    if state.status != "collecting":
        return state
    items = [
        {"notification_id": i.notification_id, "template": i.template, "summary": i.summary}
        for i in state.digest_items
    ]
    data = json.dumps({"count": len(items), "items": items}, sort_keys=True)
    return replace(state, status="pending", data=data)


def added(state: NotificationState, item: DigestItem) -> NotificationState:
    if state.status != "collecting" or item in state.digest_items:
        return state
    return replace(state, digest_items=(*state.digest_items, item))


def _opened(command: CollectDigestItem) -> NotificationRequested:
    routes = resolve_routes(None, command.preferences, False, command.policy.fallbacks)
    return NotificationRequested(
        notification_id=command.digest_id,
        user_id=command.user_id,
        template=command.template,
        requested_channels=None,
        routes=routes,
        data="{}",
        idempotency_key=None,
        critical=False,
        requested_at=command.received_at,
        deadline=command.deadline,
        max_attempts=command.policy.max_attempts,
        base_delay_ms=command.policy.base_delay_ms,
        max_delay_ms=command.policy.max_delay_ms,
        collect_until=command.window_end,
    )
