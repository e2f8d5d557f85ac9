"""One circuit breaker per delivery channel, and the attempts parked while one is open.

Breaker state lives in the worker's memory: a restarted worker starts closed and finds a
provider that is still down within `failure_threshold` attempts. Parked work is only a
command waiting its turn; a new owner recomputes it from the saga's state (`resume`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from sagas.circuit.breaker import (
    AttemptFailed,
    AttemptSucceeded,
    CircuitConfig,
    CircuitState,
    EndCoolDown,
    StartProbe,
    allows,
    handle,
    new_breaker,
    react,
)
from sagas.circuit.events import ChannelCircuitClosed, CircuitEvent
from sagas.notification.commands import Timer

T = TypeVar("T")


@dataclass
class CircuitChange(Generic[T]):
    events: list[CircuitEvent] = field(default_factory=list)
    timers: list[Timer] = field(default_factory=list)
    released: list[T] = field(default_factory=list)


class ChannelCircuits(Generic[T]):
    """Admits or parks work per channel; `T` is whatever the caller re-queues when released."""

    def __init__(self, config: CircuitConfig) -> None:
        self.config = config
        self.states: dict[str, CircuitState] = {}
        self.parked: dict[str, deque[T]] = {}

    def status(self, channel: str) -> str:
        return self._state(channel).status

    def admit(self, channel: str, item: T, now: int) -> tuple[bool, list[CircuitEvent]]:
        """May `item` start an attempt now? If not it is parked until the circuit lets it."""
        state = self._state(channel)
        if not allows(state, now):
            self.parked.setdefault(channel, deque()).append(item)
            return False, []
        if state.status != "half_open":
            return True, []
        self.states[channel], events = handle(state, StartProbe(at=now))
        return True, events

    def observe(self, channel: str, delivered: bool, now: int) -> CircuitChange[T]:
        outcome = AttemptSucceeded(at=now) if delivered else AttemptFailed(at=now)
        state, events = handle(self._state(channel), outcome)
        self.states[channel] = state
        change: CircuitChange[T] = CircuitChange(events=events)
        for event in events:
            change.timers.extend(react(state, event))
        if any(isinstance(e, ChannelCircuitClosed) for e in events):
            change.released.extend(self.parked.pop(channel, deque()))
        return change

    def cool_down_ended(self, channel: str, now: int) -> CircuitChange[T]:
        """Half-open the circuit and let one parked item through as the probe."""
        state, events = handle(self._state(channel), EndCoolDown(at=now))
        self.states[channel] = state
        change: CircuitChange[T] = CircuitChange(events=events)
        waiting = self.parked.get(channel)
        if events and waiting:
            probe = waiting.popleft()
            state = self.states[channel]
            if allows(state, now):
                self.states[channel], probe_events = handle(state, StartProbe(at=now))
                change.events.extend(probe_events)
                change.released.append(probe)
            else:
                waiting.appendleft(probe)
        return change

    def forget(self, keep: Callable[[T], bool]) -> None:
        """Drop parked items `keep` rejects (their partitions were revoked)."""
        for channel, items in self.parked.items():
            self.parked[channel] = deque(item for item in items if keep(item))

    def _state(self, channel: str) -> CircuitState:
        state = self.states.get(channel)
        if state is None:
            state = self.states[channel] = new_breaker(channel, self.config)
        return state
