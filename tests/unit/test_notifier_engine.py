"""The notifier's in-memory parts: resume, the engine's fixpoint, circuit gating and timers."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime

from aggregates.user.events import ChannelAddress
from sagas.circuit.breaker import CircuitConfig
from sagas.circuit.events import (
    ChannelCircuitClosed,
    ChannelCircuitHalfOpened,
    ChannelCircuitOpened,
    ChannelCircuitProbeStarted,
)
from sagas.notification.commands import (
    DeliverAttempt,
    FireTimer,
    RecordAttemptFailure,
    RecordDelivery,
    RenderNotification,
    StartAttempt,
    StartNotification,
    Timer,
)
from sagas.notification.resume import resume
from sagas.rendering import TemplateRenderer
from sagas.runtime.circuits import ChannelCircuits
from sagas.runtime.contents import RenderedContents
from sagas.runtime.engine import SagaEngine, Work
from sagas.runtime.timers import TimerQueue

T0 = int(datetime(2026, 1, 5, 12, 0, tzinfo=UTC).timestamp() * 1000)
DATA = json.dumps({"user": {"name": "Ada", "email": "a@x"}, "app": {"name": "N", "url": "u"}})


def start(saga_id: str, channel: str = "webhook") -> Work:
    command = StartNotification(
        notification_id=saga_id,
        user_id="u-1",
        template="welcome",
        data=DATA,
        requested_at=T0,
        deadline=T0 + 60_000,
        preferences=(ChannelAddress(channel, "https://example.com/hook"),),
        idempotency_key=f"key-{saga_id}",
    )
    return Work(saga_id, 3, command, "request-1")


def failed(saga_id: str, attempt: int, at: int) -> Work:
    failure = RecordAttemptFailure("webhook", attempt, "HTTP 500", True, at, 0.5)
    return Work(saga_id, 3, failure)


def engine(threshold: int = 5) -> SagaEngine:
    return SagaEngine(RenderedContents(TemplateRenderer()), CircuitConfig(threshold, 1_000))


def test_a_request_runs_to_its_first_delivery_in_one_step() -> None:
    machine = engine()
    step = machine.run([start("n-1")], T0)
    kinds = [type(e.event).__name__ for e in step.events]
    assert kinds == [
        "NotificationRequested",
        "NotificationRendered",
        "NotificationAttemptStarted",
    ]
    assert [e.version for e in step.events] == [1, 2, 3]
    assert {e.partition for e in step.events} == {3}
    assert step.events[0].causation_id == "request-1"
    [delivery] = step.deliveries
    assert delivery.ledger_key == "n-1/webhook/1"
    assert machine.contents.cache[delivery.content_ref].json is not None
    assert [t.kind for t in step.timers] == ["deadline"]


def test_the_same_request_twice_does_nothing_the_second_time() -> None:
    machine = engine()
    first = machine.run([start("n-1")], T0)
    again = machine.run([start("n-1")], T0 + 5)
    assert len(first.events) == 3 and again.events == [] and again.rejected == []


def test_delivery_completes_and_marks_the_saga_finished() -> None:
    machine = engine()
    machine.run([start("n-1")], T0)
    step = machine.run([Work("n-1", 3, RecordDelivery("webhook", 1, "HTTP 200", 12))], T0 + 20)
    assert [type(e.event).__name__ for e in step.events] == [
        "NotificationDelivered",
        "NotificationCompleted",
    ]
    assert step.finished == ["n-1"]


def test_failures_in_a_row_open_the_circuit_and_park_new_attempts() -> None:
    machine = engine(threshold=2)
    for saga in ("a", "b", "c"):
        machine.run([start(saga)], T0)
    machine.run([failed("a", 1, T0 + 1)], T0 + 1)
    opened = machine.run([failed("b", 1, T0 + 2)], T0 + 2)
    assert [type(e) for _, e in opened.circuit_events] == [ChannelCircuitOpened]
    assert any(t.kind == "circuit_cool_down" for t in opened.timers)
    retry = next(t for t in opened.timers if t.kind == "retry")
    parked = machine.run([Work("b", 3, FireTimer(retry, retry.due_at))], retry.due_at)
    assert parked.events == [] and len(machine.circuits.parked["webhook"]) == 1


def test_the_cool_down_lets_one_probe_through_and_success_releases_the_rest() -> None:
    machine = engine(threshold=1)
    for saga in ("a", "b"):
        machine.run([start(saga)], T0)
    first = machine.run([failed("a", 1, T0 + 1)], T0 + 1)
    retry_a = next(t for t in first.timers if t.kind == "retry")
    machine.run([failed("b", 1, T0 + 1)], T0 + 1)  # circuit already open: not counted again
    machine.run([Work("a", 3, FireTimer(retry_a, T0 + 900))], T0 + 900)
    cool = next(t for t in first.timers if t.kind == "circuit_cool_down")
    probe = machine.run([Work(cool.saga_id, -1, FireTimer(cool, cool.due_at))], cool.due_at)
    assert [type(e) for _, e in probe.circuit_events] == [
        ChannelCircuitHalfOpened,
        ChannelCircuitProbeStarted,
    ]
    assert [d.ledger_key for d in probe.deliveries] == ["a/webhook/2"]
    closed = machine.run([Work("a", 3, RecordDelivery("webhook", 2, "ok", 5))], cool.due_at + 9)
    assert [type(e) for _, e in closed.circuit_events] == [ChannelCircuitClosed]
    assert machine.circuits.status("webhook") == "closed"


def test_resume_rebuilds_pending_work_from_state_alone() -> None:
    machine = engine()
    machine.run([start("n-1"), start("n-2")], T0)
    machine.run([failed("n-2", 1, T0 + 10)], T0 + 10)
    in_flight = resume(machine.sagas["n-1"].state)
    assert [type(o) for o in in_flight] == [Timer, DeliverAttempt]
    retrying = resume(machine.sagas["n-2"].state)
    assert [(type(o), getattr(o, "kind", None)) for o in retrying] == [
        (Timer, "deadline"),
        (Timer, "retry"),
    ]
    assert isinstance(retrying[1], Timer) and retrying[1].due_at > T0 + 10


def test_resume_of_an_unrendered_saga_renders_it_again() -> None:
    machine = SagaEngine(RenderedContents(TemplateRenderer()), CircuitConfig())
    command = start("n-1").command
    assert isinstance(command, StartNotification)
    from sagas.notification.decider import decide, evolve, initial_state

    [requested] = decide(initial_state, command)
    outputs = resume(evolve(initial_state, requested))
    assert [type(o) for o in outputs] == [Timer, RenderNotification]
    assert machine.sagas == {}


def test_circuits_release_parked_work_in_order() -> None:
    circuits: ChannelCircuits[str] = ChannelCircuits(CircuitConfig(1, 100))
    assert circuits.admit("sms", "w0", 0) == (True, [])
    change = circuits.observe("sms", delivered=False, now=1)
    assert [type(e) for e in change.events] == [ChannelCircuitOpened]
    assert circuits.admit("sms", "w1", 2) == (False, [])
    assert circuits.admit("sms", "w2", 3) == (False, [])
    probe = circuits.cool_down_ended("sms", 101)
    assert probe.released == ["w1"]
    closed = circuits.observe("sms", delivered=True, now=102)
    assert closed.released == ["w2"]


def test_timer_queue_keeps_one_timer_per_identity_and_pops_when_due() -> None:
    timers = TimerQueue()
    timers.add(Timer("a", 100, "retry", "sms", 2))
    timers.add(Timer("a", 50, "retry", "sms", 2))  # the same identity, rescheduled
    timers.add(Timer("b", 70, "deadline"))
    assert len(timers) == 2 and timers.next_due() == 50
    assert [t.saga_id for t in timers.pop_due(60, 10)] == ["a"]
    assert timers.pop_due(69, 10) == [] and timers.next_due() == 70
    timers.forget(lambda t: t.saga_id != "b")
    assert timers.next_due() is None


def test_start_attempt_for_a_started_channel_is_ignored() -> None:
    machine = engine()
    machine.run([start("n-1")], T0)
    step = machine.run([Work("n-1", 3, StartAttempt("n-1", "webhook", 1))], T0 + 1)
    assert step.events == [] and step.deliveries == []


def test_failures_that_retrying_cannot_fix_leave_the_circuit_closed() -> None:
    machine = engine(threshold=1)
    machine.run([start("a")], T0)
    permanent = RecordAttemptFailure("webhook", 1, "HTTP 404", False, T0 + 1, 0.5)
    step = machine.run([Work("a", 3, permanent)], T0 + 1)
    assert step.circuit_events == [] and machine.circuits.status("webhook") == "closed"


def test_finished_sagas_that_started_before_the_horizon_are_forgotten() -> None:
    machine = engine()
    machine.run([start("old-done"), start("old-running")], T0)
    machine.run([Work("old-done", 3, RecordDelivery("webhook", 1, "HTTP 200", 5))], T0 + 10)
    machine.run([start("new-done")], T0 + 1_000)
    machine.run([Work("new-done", 3, RecordDelivery("webhook", 1, "HTTP 200", 5))], T0 + 1_010)

    evicted = machine.evict(started_before=T0 + 500)

    assert evicted == 1
    assert set(machine.sagas) == {"old-running", "new-done"}  # running sagas are kept
    assert machine.sagas["new-done"].started_at == T0 + 1_000


def test_a_digested_request_leaves_an_item_for_its_digest_and_nothing_to_send() -> None:
    machine = engine()
    command = replace(start("n-9").command, template="activity", digest_window_ms=60_000)

    step = machine.run([Work("n-9", 3, command)], T0)

    assert [type(e.event).__name__ for e in step.events] == [
        "NotificationRequested",
        "NotificationDigested",
    ]
    [forward] = step.forwards
    assert (forward.window_end, forward.item.notification_id) == (T0 + 60_000, "n-9")
    assert (step.deliveries, step.timers, machine.contents.cache) == ([], [], {})
    assert step.finished == ["n-9"]
