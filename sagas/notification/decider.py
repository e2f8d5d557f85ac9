"""The notification saga's decider: `decide(state, command)` and `evolve(state, event)`.

Every rule (channel choice, quiet hours, retry, fallback, deadline) is applied in
`decide`, so its outcome is recorded as an event and replays never re-decide.
"""

from __future__ import annotations

from dataclasses import replace
from typing import assert_never

from aggregates.errors import DomainError
from sagas.notification import digest
from sagas.notification.commands import (
    CollectDigestItem,
    FireTimer,
    NotificationCommand,
    RecordAttemptFailure,
    RecordDelivery,
    RecordRenderFailure,
    RecordRendering,
    StartAttempt,
    StartNotification,
)
from sagas.notification.events import (
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
from sagas.notification.fold import (
    fell_back,
    requested,
    retry_due,
    settled,
    started,
    with_channel,
    with_status,
)
from sagas.notification.policy import backoff_ms, quiet_hours_end, resolve_routes
from sagas.notification.state import ChannelProgress, NotificationState, initial_state

__all__ = ["decide", "evolve", "initial_state", "ledger_key"]


def ledger_key(notification_id: str, channel: str, attempt: int) -> str:
    """The delivery ledger's unique key for one attempt."""
    return f"{notification_id}/{channel}/{attempt}"


def decide(state: NotificationState, command: NotificationCommand) -> list[NotificationEvent]:
    match command:
        case StartNotification():
            return _start(state, command)
        case CollectDigestItem():
            return digest.collect(state, command)
        case _ if state.status == "new":
            raise DomainError.not_found("notification.not_found", "no such notification")
        case RecordRendering():
            return _record_rendering(state, command)
        case RecordRenderFailure():
            gave_up = NotificationGivenUp(reason=f"render_failed: {command.error}")
            return [] if state.terminal else [gave_up]
        case StartAttempt():
            return _start_attempt(state, command.channel, command.attempt)
        case RecordDelivery():
            return _record_delivery(state, command)
        case RecordAttemptFailure():
            return _record_failure(state, command)
        case FireTimer():
            return _fire(state, command)
        case _:
            assert_never(command)


def evolve(state: NotificationState, event: NotificationEvent) -> NotificationState:
    match event:
        case NotificationRequested():
            return requested(state, event)
        case NotificationDigested():
            return with_status(state, "digested")
        case NotificationDigestItemAdded():
            return digest.added(state, event.item)
        case NotificationDigestItemForwarded():
            return state
        case NotificationDigestClosed():
            return digest.closed(state)
        case NotificationDeferred():
            return with_status(state, "deferred", deferred_until=event.until)
        case NotificationResumed():
            return with_status(state, "pending", deferred_until=None)
        case NotificationRendered():
            return replace(state, contents=event.contents)
        case NotificationAttemptStarted():
            return with_channel(state, event.channel, started(event.attempt))
        case NotificationDelivered():
            return with_channel(state, event.channel, settled(event.attempt, delivered=True))
        case NotificationAttemptFailed():
            return with_channel(state, event.channel, settled(event.attempt, delivered=False))
        case NotificationRetryScheduled():
            return with_channel(state, event.channel, retry_due(event.attempt, event.due_at))
        case NotificationFellBack():
            return fell_back(state, event)
        case NotificationCompleted():
            return with_status(state, "completed")
        case NotificationGivenUp():
            return with_status(state, "given_up")
        case _:
            assert_never(event)


def _start(state: NotificationState, command: StartNotification) -> list[NotificationEvent]:
    if state.status != "new":
        if command.idempotency_key is not None and command.idempotency_key == state.idempotency_key:
            return []
        raise DomainError.conflict("notification.already_requested", "notification exists")
    if command.deadline <= command.requested_at:
        raise DomainError.invalid("notification.invalid_deadline", "deadline is not in the future")
    policy = command.policy
    if policy.max_attempts < 1 or policy.base_delay_ms < 0 or policy.max_delay_ms < 0:
        raise DomainError.invalid("notification.invalid_policy", "attempts >= 1, delays >= 0")
    routes = resolve_routes(
        command.channels, command.preferences, command.critical, policy.fallbacks
    )
    event = NotificationRequested(
        notification_id=command.notification_id,
        user_id=command.user_id,
        template=command.template,
        requested_channels=command.channels,
        routes=routes,
        data=command.data,
        idempotency_key=command.idempotency_key,
        critical=command.critical,
        requested_at=command.requested_at,
        deadline=command.deadline,
        max_attempts=policy.max_attempts,
        base_delay_ms=policy.base_delay_ms,
        max_delay_ms=policy.max_delay_ms,
    )
    if not routes:
        return [event, NotificationGivenUp(reason="no_channels")]
    if command.digest_window_ms and not command.critical:
        digested = digest.digested(command, command.digest_window_ms)
        return [replace(event, digest_id=digested.digest_id), digested]
    if command.critical or command.quiet_hours is None:
        return [event]
    until = quiet_hours_end(command.quiet_hours, command.requested_at)
    if until is None:
        return [event]
    return [event, NotificationDeferred(until=until, reason="quiet_hours")]


def _record_rendering(
    state: NotificationState, command: RecordRendering
) -> list[NotificationEvent]:
    if state.terminal or state.rendered:
        return []
    missing = {p.channel for p in state.channels} - {c.channel for c in command.contents}
    if missing:
        raise DomainError.invalid(
            "notification.render_incomplete", f"no content for {', '.join(sorted(missing))}"
        )
    return [NotificationRendered(contents=command.contents)]


def _start_attempt(state: NotificationState, channel: str, attempt: int) -> list[NotificationEvent]:
    progress = _progress(state, channel)
    if state.terminal or progress.started >= attempt:
        return []
    if state.status == "deferred" or not state.rendered:
        raise DomainError.conflict("notification.not_ready", "deferred or not rendered yet")
    if attempt != progress.started + 1 or progress.in_flight:
        raise DomainError.conflict(
            "notification.attempt_out_of_order", f"{channel} attempt {attempt} cannot start"
        )
    key = ledger_key(state.notification_id, channel, attempt)
    return [NotificationAttemptStarted(channel=channel, attempt=attempt, ledger_key=key)]


def _record_delivery(state: NotificationState, command: RecordDelivery) -> list[NotificationEvent]:
    if _already_settled(state, command.channel, command.attempt):
        return []
    delivered = NotificationDelivered(
        channel=command.channel,
        attempt=command.attempt,
        provider_response=command.provider_response,
        latency_ms=command.latency_ms,
    )
    after = evolve(state, delivered)
    if state.terminal or not after.all_delivered():
        return [delivered]
    channels = tuple(p.channel for p in after.channels if p.delivered)
    return [delivered, NotificationCompleted(channels=channels)]


def _record_failure(
    state: NotificationState, command: RecordAttemptFailure
) -> list[NotificationEvent]:
    if _already_settled(state, command.channel, command.attempt):
        return []
    failed = NotificationAttemptFailed(
        channel=command.channel,
        attempt=command.attempt,
        error=command.error,
        retryable=command.retryable,
        failed_at=command.failed_at,
        jitter=command.jitter,
    )
    return [failed] if state.terminal else [failed, _next_step(state, command)]


def _next_step(state: NotificationState, failure: RecordAttemptFailure) -> NotificationEvent:
    """Retry the same channel, else fall back along the route, else give up."""
    if failure.failed_at >= state.deadline:
        return NotificationGivenUp(reason="deadline")
    reason = "not_retryable" if not failure.retryable else "retries_exhausted"
    if failure.retryable and failure.attempt < state.max_attempts:
        delay = backoff_ms(failure.attempt, failure.jitter, state.base_delay_ms, state.max_delay_ms)
        due_at = failure.failed_at + delay
        if due_at < state.deadline:
            return NotificationRetryScheduled(
                channel=failure.channel, attempt=failure.attempt + 1, due_at=due_at
            )
        reason = "deadline_too_close"
    route = state.route_of(failure.channel)
    following = route.next_channel() if route is not None else None
    if following is None:
        return NotificationGivenUp(reason=f"{failure.channel} {reason}: {failure.error}")
    return NotificationFellBack(from_channel=failure.channel, to_channel=following, reason=reason)


def _fire(state: NotificationState, command: FireTimer) -> list[NotificationEvent]:
    timer = command.timer
    if state.terminal:
        return []
    if timer.kind == "digest_window":
        return digest.close(state)
    if timer.kind == "deadline" or command.fired_at >= state.deadline:
        return [NotificationGivenUp(reason="deadline")]
    if timer.kind == "quiet_hours":
        return [NotificationResumed(resumed_at=command.fired_at)] if state.deferred_until else []
    if timer.kind == "retry" and timer.channel is not None and timer.attempt is not None:
        if _progress(state, timer.channel).retry_attempt != timer.attempt:
            return []  # a stale or duplicate timer
        return _start_attempt(state, timer.channel, timer.attempt)
    raise DomainError.invalid("notification.unknown_timer", f"not a saga timer: {timer.kind}")


def _progress(state: NotificationState, channel: str) -> ChannelProgress:
    progress = state.progress(channel)
    if progress is None:
        raise DomainError.invalid("notification.unknown_channel", f"{channel} is not planned")
    return progress


def _already_settled(state: NotificationState, channel: str, attempt: int) -> bool:
    progress = _progress(state, channel)
    if attempt < 1 or attempt > progress.started:
        raise DomainError.invalid(
            "notification.unknown_attempt", f"{channel} attempt {attempt} never started"
        )
    return attempt <= progress.settled
