"""What a worker must do for a saga it takes over: `resume(state) -> list[Command | Timer]`.

A worker that crashed may have written events without acting on them. Everything a live
worker would still have pending (the deadline, a quiet-hours wake-up, rendering, a retry,
an attempt to start or to send) follows from the folded state alone, and every output is
idempotent by key, so resuming a saga twice does no harm.
"""

from __future__ import annotations

from sagas.notification.commands import (
    DeliverAttempt,
    RenderNotification,
    ResumeOutput,
    StartAttempt,
    Timer,
)
from sagas.notification.decider import ledger_key
from sagas.notification.state import NotificationState

__all__ = ["resume"]


def resume(state: NotificationState) -> list[ResumeOutput]:
    if state.status == "new" or state.terminal:
        return []
    saga_id = state.notification_id
    outputs: list[ResumeOutput] = [Timer(saga_id=saga_id, due_at=state.deadline, kind="deadline")]
    if state.status == "collecting" and state.collect_until is not None:
        outputs.append(Timer(saga_id=saga_id, due_at=state.collect_until, kind="digest_window"))
        return outputs
    if state.status == "deferred" and state.deferred_until is not None:
        outputs.append(Timer(saga_id=saga_id, due_at=state.deferred_until, kind="quiet_hours"))
        return outputs
    if not state.rendered:
        outputs.append(
            RenderNotification(
                notification_id=saga_id,
                template=state.template,
                channels=tuple(p.channel for p in state.channels),
                data=state.data,
            )
        )
        return outputs
    for route in state.routes:
        outputs.extend(_route_work(state, route.channel))
    return outputs


def _route_work(state: NotificationState, channel: str) -> list[ResumeOutput]:
    progress = state.progress(channel)
    if progress is None or progress.delivered:
        return []
    saga_id = state.notification_id
    if progress.in_flight:
        return [
            DeliverAttempt(
                notification_id=saga_id,
                user_id=state.user_id,
                channel=channel,
                attempt=progress.started,
                ledger_key=ledger_key(saga_id, channel, progress.started),
                content_ref=state.content_ref(channel),
                deadline=state.deadline,
            )
        ]
    if progress.retry_attempt is not None and progress.retry_due_at is not None:
        return [
            Timer(
                saga_id=saga_id,
                due_at=progress.retry_due_at,
                kind="retry",
                channel=channel,
                attempt=progress.retry_attempt,
            )
        ]
    if progress.started == 0:
        return [StartAttempt(notification_id=saga_id, channel=channel, attempt=1)]
    return []  # settled without delivery: its next step was decided (fallback or give-up)
