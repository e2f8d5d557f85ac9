"""Given events / when command / then events and reactions, for the notification saga."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from functools import reduce

import pytest

from aggregates.errors import DomainError
from aggregates.user.events import ChannelAddress
from sagas.notification.commands import (
    DeliverAttempt,
    FireTimer,
    NotificationCommand,
    RecordAttemptFailure,
    RecordDelivery,
    RecordRenderFailure,
    RecordRendering,
    RenderNotification,
    SagaOutput,
    StartAttempt,
    StartNotification,
    Timer,
)
from sagas.notification.decider import decide, evolve, initial_state
from sagas.notification.events import (
    NotificationAttemptFailed,
    NotificationAttemptStarted,
    NotificationCompleted,
    NotificationDelivered,
    NotificationEvent,
    NotificationFellBack,
    NotificationGivenUp,
    NotificationRendered,
    NotificationRequested,
    NotificationRetryScheduled,
    RenderedContent,
    Route,
)
from sagas.notification.react import react
from sagas.notification.state import NotificationState

T0 = int(datetime(2026, 1, 5, 12, 0, tzinfo=UTC).timestamp() * 1000)
HOUR = 3_600_000
ID = "n-1"
PREFS = (
    ChannelAddress("push", "device-1"),
    ChannelAddress("email", "ada@example.com"),
)
START = StartNotification(
    notification_id=ID,
    user_id="u-1",
    template="welcome",
    data='{"name": "Ada"}',
    requested_at=T0,
    deadline=T0 + HOUR,
    preferences=PREFS,
    channels=("push",),
    idempotency_key="k-1",
)


def fold(events: Sequence[NotificationEvent]) -> NotificationState:
    return reduce(evolve, events, initial_state)


def history(*commands: NotificationCommand) -> list[NotificationEvent]:
    """The events a sequence of commands produces, starting from nothing."""
    events: list[NotificationEvent] = []
    for command in commands:
        events += decide(fold(events), command)
    return events


def then(
    given: Sequence[NotificationEvent], command: NotificationCommand
) -> list[NotificationEvent]:
    return decide(fold(given), command)


def reactions(
    given: Sequence[NotificationEvent], new: Sequence[NotificationEvent]
) -> list[SagaOutput]:
    """What the worker does: fold each new event, then react to it."""
    state, out = fold(given), list[SagaOutput]()
    for event in new:
        state = evolve(state, event)
        out += react(state, event)
    return out


def rendered(channels: Sequence[str] = ("push", "email")) -> RecordRendering:
    return RecordRendering(tuple(RenderedContent(c, f"blob/{ID}/{c}", 10) for c in channels))


def failure(
    attempt: int,
    *,
    retryable: bool = True,
    at: int = T0,
    jitter: float = 0.0,
    channel: str = "push",
) -> RecordAttemptFailure:
    return RecordAttemptFailure(channel, attempt, "503", retryable, at, jitter)


STARTED = history(START, rendered(), StartAttempt(ID, "push", 1))


def test_request_records_routes_with_fallback_and_policy() -> None:
    [requested] = then([], START)
    assert isinstance(requested, NotificationRequested)
    assert requested.routes == (Route(("push", "email")),)
    assert requested.requested_channels == ("push",)
    assert (requested.max_attempts, requested.base_delay_ms) == (3, 1_000)


def test_requested_reacts_with_render_and_deadline_timer() -> None:
    new = then([], START)
    assert reactions([], new) == [
        RenderNotification(ID, "welcome", ("push", "email"), '{"name": "Ada"}'),
        Timer(ID, T0 + HOUR, "deadline"),
    ]


def test_rendered_reacts_with_first_attempt_on_primary_channel() -> None:
    given = history(START)
    new = then(given, rendered())
    assert reactions(given, new) == [StartAttempt(ID, "push", 1)]


def test_render_must_cover_every_planned_channel() -> None:
    with pytest.raises(DomainError) as caught:
        then(history(START), rendered(("push",)))
    assert caught.value.code == "notification.render_incomplete"


def test_render_failure_gives_up() -> None:
    assert then(history(START), RecordRenderFailure("missing variable name")) == [
        NotificationGivenUp("render_failed: missing variable name")
    ]


def test_attempt_started_carries_ledger_key_and_reacts_with_delivery() -> None:
    given = history(START, rendered())
    new = then(given, StartAttempt(ID, "push", 1))
    assert new == [NotificationAttemptStarted("push", 1, f"{ID}/push/1")]
    assert reactions(given, new) == [
        DeliverAttempt(ID, "u-1", "push", 1, f"{ID}/push/1", f"blob/{ID}/push", T0 + HOUR)
    ]


def test_start_attempt_is_idempotent_and_ordered() -> None:
    assert then(STARTED, StartAttempt(ID, "push", 1)) == []
    with pytest.raises(DomainError) as caught:
        then(STARTED, StartAttempt(ID, "push", 2))
    assert caught.value.code == "notification.attempt_out_of_order"


def test_attempt_cannot_start_before_rendering() -> None:
    with pytest.raises(DomainError) as caught:
        then(history(START), StartAttempt(ID, "push", 1))
    assert caught.value.code == "notification.not_ready"


def test_delivery_on_every_route_completes() -> None:
    new = then(STARTED, RecordDelivery("push", 1, "200 OK", 42))
    assert new == [NotificationDelivered("push", 1, "200 OK", 42), NotificationCompleted(("push",))]
    assert fold([*STARTED, *new]).status == "completed"
    assert reactions(STARTED, new) == []


def test_completion_waits_for_every_required_channel() -> None:
    both = replace(START, channels=("push", "email"))
    given = history(both, rendered(), StartAttempt(ID, "push", 1), StartAttempt(ID, "email", 1))
    first = then(given, RecordDelivery("push", 1, "ok", 5))
    assert first == [NotificationDelivered("push", 1, "ok", 5)]
    assert then([*given, *first], RecordDelivery("email", 1, "ok", 7))[-1] == (
        NotificationCompleted(("push", "email"))
    )


def test_both_required_channels_start_at_once_without_fallback_to_each_other() -> None:
    both = replace(START, channels=("push", "email"))
    [requested] = then([], both)
    assert isinstance(requested, NotificationRequested)
    assert requested.routes == (Route(("push",)), Route(("email",)))
    given = history(both)
    assert reactions(given, then(given, rendered())) == [
        StartAttempt(ID, "push", 1),
        StartAttempt(ID, "email", 1),
    ]


def test_replayed_outcomes_are_ignored() -> None:
    delivered = history(
        START, rendered(), StartAttempt(ID, "push", 1), RecordDelivery("push", 1, "ok", 1)
    )
    assert then(delivered, RecordDelivery("push", 1, "ok", 1)) == []
    assert then(delivered, failure(1)) == []


def test_outcome_of_an_attempt_never_started_is_rejected() -> None:
    with pytest.raises(DomainError) as caught:
        then(STARTED, RecordDelivery("push", 2, "ok", 1))
    assert caught.value.code == "notification.unknown_attempt"


def test_evolving_the_same_event_twice_does_not_double_count() -> None:
    events = history(START, rendered(), StartAttempt(ID, "push", 1), failure(1))
    doubled = [e for event in events for e in (event, event)]
    assert fold(doubled) == fold(events)
    progress = fold(doubled).progress("push")
    assert progress is not None
    assert (progress.started, progress.settled, progress.retry_attempt) == (1, 1, 2)


def test_same_idempotency_key_gives_no_new_events() -> None:
    assert then(history(START), START) == []


def test_another_request_under_the_same_id_is_a_conflict() -> None:
    with pytest.raises(DomainError) as caught:
        then(history(START), replace(START, idempotency_key="k-2"))
    assert caught.value.code == "notification.already_requested"


def test_commands_before_a_request_are_not_found() -> None:
    with pytest.raises(DomainError) as caught:
        then([], rendered())
    assert caught.value.code == "notification.not_found"


def test_deadline_must_be_after_the_request() -> None:
    with pytest.raises(DomainError) as caught:
        then([], replace(START, deadline=T0))
    assert caught.value.code == "notification.invalid_deadline"


def test_deadline_timer_gives_up_and_later_timers_do_nothing() -> None:
    new = then(STARTED, FireTimer(Timer(ID, T0 + HOUR, "deadline"), T0 + HOUR))
    assert new == [NotificationGivenUp("deadline")]
    assert then([*STARTED, *new], FireTimer(Timer(ID, T0 + HOUR, "deadline"), T0 + HOUR)) == []


def test_late_outcome_after_giving_up_is_recorded_without_next_step() -> None:
    given = [*STARTED, NotificationGivenUp("deadline")]
    assert then(given, failure(1)) == [NotificationAttemptFailed("push", 1, "503", True, T0, 0.0)]
    assert fold([*given, NotificationCompleted(("push",))]).status == "given_up"


def test_circuit_timer_is_not_a_saga_timer() -> None:
    with pytest.raises(DomainError) as caught:
        then(STARTED, FireTimer(Timer(ID, T0, "circuit_cool_down", "push"), T0))
    assert caught.value.code == "notification.unknown_timer"


def test_fell_back_reacts_with_first_attempt_on_next_channel() -> None:
    new = [NotificationFellBack("push", "email", "not_retryable")]
    assert reactions(STARTED, new) == [StartAttempt(ID, "email", 1)]
    assert then([*STARTED, *new], StartAttempt(ID, "email", 1)) == [
        NotificationAttemptStarted("email", 1, f"{ID}/email/1")
    ]


def test_delivery_on_the_fallback_completes_the_route() -> None:
    given = history(
        START,
        rendered(),
        StartAttempt(ID, "push", 1),
        failure(1, retryable=False),
        StartAttempt(ID, "email", 1),
    )
    assert then(given, RecordDelivery("email", 1, "250", 9))[-1] == NotificationCompleted(
        ("email",)
    )


def test_retry_scheduled_reacts_with_a_retry_timer() -> None:
    new = [NotificationRetryScheduled("push", 2, T0 + 700)]
    assert reactions(STARTED, new) == [Timer(ID, T0 + 700, "retry", "push", 2)]


def test_rendered_after_giving_up_reacts_with_nothing() -> None:
    given = [*history(START), NotificationGivenUp("deadline")]
    assert reactions(given, [NotificationRendered(())]) == []
