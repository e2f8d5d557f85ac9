"""The notification saga's reactions: `react(state, event) -> list[Command | Timer]`.

`state` is the state after folding `event`. Every output is idempotent by key
(timers by (saga_id, kind, channel, attempt), attempts by ledger key), so a worker
that crashed before acting may safely react to the same events again.
"""

from __future__ import annotations

from typing import assert_never

from sagas.notification.commands import (
    DeliverAttempt,
    ForwardToDigest,
    RenderNotification,
    SagaOutput,
    StartAttempt,
    Timer,
)
from sagas.notification.events import (
    DigestItem,
    NotificationAttemptFailed,
    NotificationAttemptStarted,
    NotificationCompleted,
    NotificationDeferred,
    NotificationDelivered,
    NotificationDigestClosed,
    NotificationDigested,
    NotificationDigestItemAdded,
    NotificationDigestItemForwarded,
    NotificationEvent,
    NotificationFellBack,
    NotificationGivenUp,
    NotificationRendered,
    NotificationRequested,
    NotificationResumed,
    NotificationRetryScheduled,
)
from sagas.notification.state import NotificationState

__all__ = ["react"]


def react(state: NotificationState, event: NotificationEvent) -> list[SagaOutput]:
    # Handing an item to a digest is what ends a digested saga, or follows a closed digest.
    if isinstance(event, NotificationDigested):
        item = DigestItem(state.notification_id, state.template, event.summary)
        return [ForwardToDigest(event.digest_id, state.user_id, event.window_end, item)]
    if isinstance(event, NotificationDigestItemForwarded):
        return [ForwardToDigest(event.digest_id, state.user_id, event.window_end, event.item)]
    if state.terminal:
        return []
    saga_id = state.notification_id
    match event:
        case NotificationRequested() if event.digest_id is not None:
            return []  # the notification.digested that follows hands it over
        case NotificationRequested() if state.status == "collecting":
            return _collect(state)
        case NotificationRequested() | NotificationDigestClosed():
            return _render(state)
        case NotificationDeferred():
            return [Timer(saga_id=saga_id, due_at=event.until, kind="quiet_hours")]
        case NotificationRendered() | NotificationResumed():
            return _first_attempts(state)
        case NotificationAttemptStarted():
            return [_deliver(state, event)]
        case NotificationRetryScheduled():
            return [
                Timer(
                    saga_id=saga_id,
                    due_at=event.due_at,
                    kind="retry",
                    channel=event.channel,
                    attempt=event.attempt,
                )
            ]
        case NotificationFellBack():
            return [StartAttempt(notification_id=saga_id, channel=event.to_channel, attempt=1)]
        case (
            NotificationDelivered()
            | NotificationAttemptFailed()
            | NotificationCompleted()
            | NotificationGivenUp()
            | NotificationDigestItemAdded()
            | NotificationDigested()
            | NotificationDigestItemForwarded()
        ):
            # The next step of a failure is its own event, decided alongside it.
            return []
        case _:
            assert_never(event)


def _collect(state: NotificationState) -> list[SagaOutput]:
    saga_id = state.notification_id
    until = state.deadline if state.collect_until is None else state.collect_until
    return [
        Timer(saga_id=saga_id, due_at=until, kind="digest_window"),
        Timer(saga_id=saga_id, due_at=state.deadline, kind="deadline"),
    ]


def _render(state: NotificationState) -> list[SagaOutput]:
    if not state.routes:
        return []  # nothing to deliver: the same decision gave up
    return [
        RenderNotification(
            notification_id=state.notification_id,
            template=state.template,
            channels=tuple(p.channel for p in state.channels),
            data=state.data,
        ),
        Timer(saga_id=state.notification_id, due_at=state.deadline, kind="deadline"),
    ]


def _first_attempts(state: NotificationState) -> list[SagaOutput]:
    if state.status != "pending" or not state.rendered:
        return []
    starts: list[SagaOutput] = []
    for route in state.routes:
        progress = state.progress(route.channel)
        if progress is not None and progress.started == 0:
            starts.append(
                StartAttempt(
                    notification_id=state.notification_id, channel=route.channel, attempt=1
                )
            )
    return starts


def _deliver(state: NotificationState, event: NotificationAttemptStarted) -> DeliverAttempt:
    return DeliverAttempt(
        notification_id=state.notification_id,
        user_id=state.user_id,
        channel=event.channel,
        attempt=event.attempt,
        ledger_key=event.ledger_key,
        content_ref=state.content_ref(event.channel),
        deadline=state.deadline,
    )
