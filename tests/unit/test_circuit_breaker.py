"""Given / when / then for a channel's circuit breaker."""

from __future__ import annotations

from collections.abc import Sequence
from functools import reduce

from sagas.circuit.breaker import (
    AttemptFailed,
    AttemptSucceeded,
    CircuitConfig,
    CircuitState,
    EndCoolDown,
    StartProbe,
    allows,
    evolve,
    handle,
    new_breaker,
    observe,
    react,
)
from sagas.circuit.events import (
    ChannelCircuitClosed,
    ChannelCircuitHalfOpened,
    ChannelCircuitOpened,
    ChannelCircuitProbeStarted,
    CircuitEvent,
)
from sagas.notification.commands import Timer
from sagas.notification.events import NotificationAttemptFailed, NotificationDelivered

CONFIG = CircuitConfig(failure_threshold=3, cool_down_ms=10_000)
CLOSED = new_breaker("push", CONFIG)
OPENED = ChannelCircuitOpened(consecutive_failures=3, reopen_at=10_300)


def given(events: Sequence[CircuitEvent | AttemptFailed | AttemptSucceeded]) -> CircuitState:
    return reduce(evolve, events, CLOSED)


def test_closed_allows_attempts() -> None:
    assert allows(CLOSED, 0)


def test_failures_below_the_threshold_only_count() -> None:
    state, events = handle(given([AttemptFailed(100)]), AttemptFailed(200))
    assert events == []
    assert state.consecutive_failures == 2 and allows(state, 200)


def test_threshold_of_consecutive_failures_opens_with_a_cool_down_timer() -> None:
    state, events = handle(given([AttemptFailed(100), AttemptFailed(200)]), AttemptFailed(300))
    assert events == [OPENED]
    assert state.status == "open" and not allows(state, 300)
    assert react(state, OPENED) == [Timer("channel:push", 10_300, "circuit_cool_down", "push")]


def test_a_success_resets_the_count() -> None:
    state, _ = handle(given([AttemptFailed(1), AttemptFailed(2)]), AttemptSucceeded(3))
    assert state.consecutive_failures == 0
    assert handle(state, AttemptFailed(4))[1] == []


def test_outcomes_while_open_change_nothing() -> None:
    state = given([OPENED])
    assert handle(state, AttemptFailed(400)) == (state, [])
    assert handle(state, AttemptSucceeded(400)) == (state, [])


def test_early_or_repeated_cool_down_timer_does_nothing() -> None:
    assert handle(given([OPENED]), EndCoolDown(10_299))[1] == []
    assert handle(given([OPENED, ChannelCircuitHalfOpened()]), EndCoolDown(10_300))[1] == []


def test_cool_down_half_opens() -> None:
    state, events = handle(given([OPENED]), EndCoolDown(10_300))
    assert events == [ChannelCircuitHalfOpened()]
    assert state.status == "half_open" and allows(state, 10_300)


def test_half_open_lets_exactly_one_probe_through() -> None:
    state, events = handle(given([OPENED, ChannelCircuitHalfOpened()]), StartProbe(11_000))
    assert events == [ChannelCircuitProbeStarted(expires_at=21_000)]
    assert not allows(state, 11_001)
    assert handle(state, StartProbe(11_002))[1] == []


def test_a_lost_probe_expires_so_another_may_go() -> None:
    state = given([OPENED, ChannelCircuitHalfOpened(), ChannelCircuitProbeStarted(21_000)])
    assert allows(state, 21_000)
    assert handle(state, StartProbe(21_000))[1] == [ChannelCircuitProbeStarted(31_000)]


def test_probe_is_refused_unless_half_open() -> None:
    assert handle(CLOSED, StartProbe(0))[1] == []
    assert handle(given([OPENED]), StartProbe(0))[1] == []


def test_probe_success_closes() -> None:
    probing = given([OPENED, ChannelCircuitHalfOpened(), ChannelCircuitProbeStarted(21_000)])
    state, events = handle(probing, AttemptSucceeded(11_500))
    assert events == [ChannelCircuitClosed()]
    assert state == CLOSED


def test_probe_failure_reopens_for_another_cool_down() -> None:
    probing = given([OPENED, ChannelCircuitHalfOpened(), ChannelCircuitProbeStarted(21_000)])
    state, events = handle(probing, AttemptFailed(11_500))
    assert events == [ChannelCircuitOpened(consecutive_failures=1, reopen_at=21_500)]
    assert state.status == "open" and not allows(state, 11_500)


def test_straggler_outcome_in_half_open_without_a_probe_is_ignored() -> None:
    half_open = given([OPENED, ChannelCircuitHalfOpened()])
    assert handle(half_open, AttemptFailed(11_000))[1] == []
    assert handle(half_open, AttemptSucceeded(11_000))[1] == []


def test_replaying_circuit_events_is_idempotent() -> None:
    events: list[CircuitEvent] = [OPENED, ChannelCircuitHalfOpened(), ChannelCircuitClosed()]
    assert given([twice for event in events for twice in (event, event)]) == given(events)


def test_saga_events_are_observed_as_outcomes() -> None:
    failed = NotificationAttemptFailed("push", 1, "503", True, 5, 0.1)
    assert observe(failed, 7) == ("push", AttemptFailed(7))
    assert observe(NotificationDelivered("email", 1, "ok", 3), 8) == ("email", AttemptSucceeded(8))
    assert observe(ChannelCircuitClosed(), 9) is None
