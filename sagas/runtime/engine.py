"""Applies commands to notification sagas held in memory, to a fixpoint, without I/O.

One `run` takes the commands of a worker step (new requests, attempt outcomes, due timers)
and follows each saga's reactions as far as they go without the outside world: rendering
is done inline, attempts are started unless their channel's circuit is open. What is left
for the worker is returned in a `Step`: events to write, deliveries to send and timers to
keep. The worker writes the events before it acts on anything else in the step.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import assert_never

import structlog

from aggregates.errors import DomainError
from sagas.circuit.breaker import CircuitConfig
from sagas.circuit.events import CircuitEvent
from sagas.notification.commands import (
    DeliverAttempt,
    FireTimer,
    ForwardToDigest,
    NotificationCommand,
    RenderNotification,
    SagaOutput,
    StartAttempt,
    Timer,
)
from sagas.notification.decider import decide, evolve, initial_state
from sagas.notification.events import (
    NotificationAttemptFailed,
    NotificationDelivered,
    NotificationEvent,
)
from sagas.notification.react import react
from sagas.notification.state import NotificationState
from sagas.runtime.circuits import ChannelCircuits, CircuitChange
from sagas.runtime.contents import RenderedContents

log = structlog.get_logger()
CHANNEL_SAGA_PREFIX = "channel:"


@dataclass
class Saga:
    state: NotificationState
    version: int
    partition: int
    started_at: int  # epoch ms of its first event


@dataclass(frozen=True)
class Work:
    """A command for one saga; `causation_id` names the message that caused it, if any."""

    saga_id: str
    partition: int
    command: NotificationCommand
    causation_id: str | None = None


@dataclass(frozen=True)
class SagaEventOut:
    saga_id: str
    partition: int
    version: int
    event: NotificationEvent
    causation_id: str | None


@dataclass(frozen=True)
class Rejected:
    work: Work
    error: DomainError


@dataclass
class Step:
    events: list[SagaEventOut] = field(default_factory=list)
    circuit_events: list[tuple[str, CircuitEvent]] = field(default_factory=list)
    deliveries: list[DeliverAttempt] = field(default_factory=list)
    forwards: list[ForwardToDigest] = field(default_factory=list)  # items for digests
    timers: list[Timer] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    finished: list[str] = field(default_factory=list)  # sagas that reached a terminal status


class SagaEngine:
    def __init__(self, contents: RenderedContents, circuit: CircuitConfig) -> None:
        self.contents = contents
        self.sagas: dict[str, Saga] = {}
        self.circuits: ChannelCircuits[Work] = ChannelCircuits(circuit)

    def run(self, works: list[Work], now: int) -> Step:
        step = Step()
        queue = deque(work for work in works if self.admit(work, now, step))
        while queue:
            work = queue.popleft()
            if work.saga_id.startswith(CHANNEL_SAGA_PREFIX):
                self._channel_timer(work, now, step, queue)
            else:
                self._apply(work, now, step, queue)
        return step

    @property
    def owned(self) -> Mapping[str, Saga]:
        """The sagas held in memory, read-only: changed only through the methods here."""
        return MappingProxyType(self.sagas)

    def circuit_statuses(self) -> dict[str, str]:
        """channel -> `closed`, `open` or `half_open`, for every channel attempted so far."""
        return {channel: self.circuits.status(channel) for channel in list(self.circuits.states)}

    def adopt(self, sagas: Mapping[str, Saga]) -> None:
        """Take over sagas rebuilt from the log for a newly assigned partition."""
        self.sagas.update(sagas)

    def finish(self, saga_id: str) -> Saga:
        """A saga reached a terminal status: its rendered contents are no longer needed."""
        saga = self.sagas[saga_id]
        self.contents.forget([c.content_ref for c in saga.state.contents])
        return saga

    def render(self, command: RenderNotification) -> NotificationCommand:
        return self.contents.render(command)

    def release(self, partitions: set[int]) -> None:
        """Forget the sagas and parked attempts of partitions this worker lost."""
        for saga_id in [s for s, saga in self.sagas.items() if saga.partition in partitions]:
            del self.sagas[saga_id]
        self.circuits.forget(lambda work: work.partition not in partitions)

    def evict(self, started_before: int) -> int:
        """Forget finished sagas that started before the horizon, as a rebuild would."""
        old = [
            saga_id
            for saga_id, saga in self.sagas.items()
            if saga.state.terminal and saga.started_at < started_before
        ]
        for saga_id in old:
            del self.sagas[saga_id]
        return len(old)

    def admit(self, work: Work, now: int, step: Step) -> bool:
        """Whether `work` may go now; work that would start an attempt waits on open circuits."""
        channel = _attempt_channel(work.command)
        if channel is None:
            return True
        admitted, events = self.circuits.admit(channel, work, now)
        step.circuit_events.extend((channel, e) for e in events)
        return admitted

    def _apply(self, work: Work, now: int, step: Step, queue: deque[Work]) -> None:
        saga = self.sagas.get(work.saga_id) or Saga(initial_state, 0, work.partition, now)
        try:
            events = decide(saga.state, work.command)
        except DomainError as error:
            step.rejected.append(Rejected(work, error))
            return
        for event in events:
            saga.state = evolve(saga.state, event)
            saga.version += 1
            step.events.append(
                SagaEventOut(work.saga_id, saga.partition, saga.version, event, work.causation_id)
            )
            self._observe(event, now, step, queue)
            for output in react(saga.state, event):
                self._follow(work, output, now, step, queue)
        if events:
            self.sagas[work.saga_id] = saga
            if saga.state.terminal:
                step.finished.append(work.saga_id)

    def _follow(
        self, cause: Work, output: SagaOutput, now: int, step: Step, queue: deque[Work]
    ) -> None:
        match output:
            case RenderNotification():
                command = self.contents.render(output)
                queue.append(Work(cause.saga_id, cause.partition, command))
            case StartAttempt():
                work = Work(cause.saga_id, cause.partition, output)
                if self.admit(work, now, step):
                    queue.append(work)
            case DeliverAttempt():
                step.deliveries.append(output)
            case Timer():
                step.timers.append(output)
            case ForwardToDigest():
                step.forwards.append(output)
            case _:
                assert_never(output)

    def _observe(self, event: NotificationEvent, now: int, step: Step, queue: deque[Work]) -> None:
        """Feed the channel's breaker. A failure that retrying cannot fix (a 4xx, a bad
        address, a channel not configured) says nothing about the provider's health."""
        if isinstance(event, NotificationDelivered):
            change = self.circuits.observe(event.channel, True, now)
        elif isinstance(event, NotificationAttemptFailed) and event.retryable:
            change = self.circuits.observe(event.channel, False, now)
        else:
            return
        self._circuit_change(event.channel, change, step, queue)

    def _channel_timer(self, work: Work, now: int, step: Step, queue: deque[Work]) -> None:
        command = work.command
        if isinstance(command, FireTimer) and command.timer.kind == "circuit_cool_down":
            channel = work.saga_id.removeprefix(CHANNEL_SAGA_PREFIX)
            self._circuit_change(channel, self.circuits.cool_down_ended(channel, now), step, queue)
        else:
            log.warning("unknown_channel_work", saga_id=work.saga_id)

    def _circuit_change(
        self, channel: str, change: CircuitChange[Work], step: Step, queue: deque[Work]
    ) -> None:
        step.circuit_events.extend((channel, e) for e in change.events)
        step.timers.extend(change.timers)
        queue.extend(change.released)


def _attempt_channel(command: NotificationCommand) -> str | None:
    """The channel on which `command` would start an attempt, if it would start one."""
    if isinstance(command, StartAttempt):
        return command.channel
    if isinstance(command, FireTimer) and command.timer.kind == "retry":
        return command.timer.channel
    return None
