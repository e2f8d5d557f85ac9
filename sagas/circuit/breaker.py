"""The circuit breaker decider: closed -> open -> half_open -> closed (or open again).

Inputs are attempt outcomes observed on the channel (`AttemptSucceeded`,
`AttemptFailed`, derived from the saga's `notification.delivered` and
`notification.attempt_failed`), the cool-down timer (`EndCoolDown`) and the worker's
claim of the half-open probe (`StartProbe`). Outcomes are folded too: they carry the
consecutive-failure count, which is not worth an event of its own.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal, assert_never

from sagas.circuit.events import (
    ChannelCircuitClosed,
    ChannelCircuitHalfOpened,
    ChannelCircuitOpened,
    ChannelCircuitProbeStarted,
    CircuitEvent,
)
from sagas.notification.commands import Timer
from sagas.notification.events import NotificationAttemptFailed, NotificationDelivered

__all__ = [
    "allows",
    "decide",
    "evolve",
    "handle",
    "new_breaker",
    "observe",
    "react",
]

Status = Literal["closed", "open", "half_open"]


@dataclass(frozen=True)
class CircuitConfig:
    failure_threshold: int = 5
    cool_down_ms: int = 30_000


@dataclass(frozen=True)
class CircuitState:
    channel: str
    config: CircuitConfig = CircuitConfig()
    status: Status = "closed"
    consecutive_failures: int = 0
    reopen_at: int | None = None
    probe_expires_at: int | None = None


@dataclass(frozen=True)
class AttemptSucceeded:
    at: int


@dataclass(frozen=True)
class AttemptFailed:
    at: int


@dataclass(frozen=True)
class EndCoolDown:
    at: int


@dataclass(frozen=True)
class StartProbe:
    at: int


Outcome = AttemptSucceeded | AttemptFailed
CircuitInput = Outcome | EndCoolDown | StartProbe


DEFAULT_CONFIG = CircuitConfig()


def new_breaker(channel: str, config: CircuitConfig = DEFAULT_CONFIG) -> CircuitState:
    """The initial (closed) state of one channel's breaker."""
    return CircuitState(channel=channel, config=config)


def allows(state: CircuitState, now: int) -> bool:
    """May an attempt go now? In half_open, only if the probe is free: claim it with StartProbe."""
    match state.status:
        case "closed":
            return True
        case "open":
            return False
        case "half_open":
            return state.probe_expires_at is None or now >= state.probe_expires_at
        case _:
            assert_never(state.status)


def decide(state: CircuitState, command: CircuitInput) -> list[CircuitEvent]:
    match command:
        case AttemptFailed():
            return _failed(state, command.at)
        case AttemptSucceeded():
            probing = state.status == "half_open" and state.probe_expires_at is not None
            return [ChannelCircuitClosed()] if probing else []
        case EndCoolDown():
            due = state.status == "open" and state.reopen_at is not None
            return (
                [ChannelCircuitHalfOpened()] if due and command.at >= (state.reopen_at or 0) else []
            )
        case StartProbe():
            if state.status != "half_open" or not allows(state, command.at):
                return []  # refused: the worker must not send
            expires_at = command.at + state.config.cool_down_ms
            return [ChannelCircuitProbeStarted(expires_at=expires_at)]
        case _:
            assert_never(command)


def evolve(state: CircuitState, event: CircuitEvent | Outcome) -> CircuitState:
    match event:
        case AttemptFailed():
            counts = state.status == "closed"
            return replace(state, consecutive_failures=state.consecutive_failures + counts)
        case AttemptSucceeded():
            return replace(state, consecutive_failures=0) if state.status == "closed" else state
        case ChannelCircuitOpened():
            return replace(
                state,
                status="open",
                consecutive_failures=event.consecutive_failures,
                reopen_at=event.reopen_at,
                probe_expires_at=None,
            )
        case ChannelCircuitHalfOpened():
            return replace(state, status="half_open", probe_expires_at=None)
        case ChannelCircuitProbeStarted():
            return replace(state, probe_expires_at=event.expires_at)
        case ChannelCircuitClosed():
            return replace(
                state,
                status="closed",
                consecutive_failures=0,
                reopen_at=None,
                probe_expires_at=None,
            )
        case _:
            assert_never(event)


def react(state: CircuitState, event: CircuitEvent) -> list[Timer]:
    """An opened circuit needs its cool-down timer; nothing else schedules work."""
    if isinstance(event, ChannelCircuitOpened):
        saga_id = f"channel:{state.channel}"
        return [Timer(saga_id, event.reopen_at, "circuit_cool_down", channel=state.channel)]
    return []


def handle(state: CircuitState, command: CircuitInput) -> tuple[CircuitState, list[CircuitEvent]]:
    """Decide, then fold the outcome (if it is one) and the new events."""
    events = decide(state, command)
    if isinstance(command, AttemptSucceeded | AttemptFailed):
        state = evolve(state, command)
    for event in events:
        state = evolve(state, event)
    return state, events


def observe(event: object, at: int) -> tuple[str, Outcome] | None:
    """The channel and outcome that a saga event reports, if any; `at` is its occurred_at."""
    if isinstance(event, NotificationDelivered):
        return event.channel, AttemptSucceeded(at=at)
    if isinstance(event, NotificationAttemptFailed):
        return event.channel, AttemptFailed(at=at)
    return None


def _failed(state: CircuitState, at: int) -> list[CircuitEvent]:
    reopen_at = at + state.config.cool_down_ms
    match state.status:
        case "closed":
            failures = state.consecutive_failures + 1
            if failures < state.config.failure_threshold:
                return []
            return [ChannelCircuitOpened(consecutive_failures=failures, reopen_at=reopen_at)]
        case "half_open":
            if state.probe_expires_at is None:
                return []  # a straggler from before the circuit opened, not the probe
            return [ChannelCircuitOpened(consecutive_failures=1, reopen_at=reopen_at)]
        case "open":
            return []
        case _:
            assert_never(state.status)
