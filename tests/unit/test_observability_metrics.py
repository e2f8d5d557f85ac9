"""Metrics added for the alert rules: each watched loop's heartbeat age (a consumer that
stopped polling) and each channel's circuit state, as /metrics shows them."""

from __future__ import annotations

import uuid

from prometheus_client import REGISTRY

from sagas.circuit.breaker import CircuitConfig
from sagas.rendering import TemplateRenderer
from sagas.runtime.contents import RenderedContents
from sagas.runtime.engine import SagaEngine
from streams.notifier import metrics
from streams.process.watchdog import Watchdog


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def age(loop: str, name: str = "nexus_loop_heartbeat_age_seconds") -> float | None:
    return REGISTRY.get_sample_value(name, {"loop": loop})


def test_a_loop_ages_until_it_beats_and_shows_its_bound() -> None:
    clock, loop = Clock(), f"poll loop {uuid.uuid4()}"
    watchdog = Watchdog(30.0, clock=clock)
    heartbeat = watchdog.heartbeat(loop)

    clock.now += 42
    assert age(loop) == 42.0
    assert age(loop, "nexus_loop_heartbeat_bound_seconds") == 30.0

    heartbeat.beat()
    assert age(loop) == 0.0


def test_a_loop_waiting_on_purpose_or_in_a_catch_up_is_not_ageing() -> None:
    clock, loop = Clock(), f"agent {uuid.uuid4()}"
    watchdog = Watchdog(30.0, clock=clock)
    heartbeat = watchdog.heartbeat(loop)

    with heartbeat.waiting():
        clock.now += 100
        assert age(loop) == 0.0
    with watchdog.catching_up("rebuilding"):
        clock.now += 100
        assert age(loop) == 0.0


def test_a_dropped_watchdog_leaves_metrics() -> None:
    loop = f"gone {uuid.uuid4()}"
    Watchdog(30.0).heartbeat(loop)  # nothing keeps it

    assert age(loop) is None


def test_the_circuit_gauge_shows_each_channel_in_one_state() -> None:
    channel = f"webhook-{uuid.uuid4().hex[:8]}"
    engine = SagaEngine(RenderedContents(TemplateRenderer()), CircuitConfig(1, 1_000))
    engine.circuits.observe(channel, delivered=False, now=0)  # one failure opens it

    metrics.show_circuits(engine.circuit_statuses())

    states = {
        state: REGISTRY.get_sample_value(
            "nexus_notifier_circuit_state", {"channel": channel, "state": state}
        )
        for state in ("closed", "open", "half_open")
    }
    assert states == {"closed": 0.0, "open": 1.0, "half_open": 0.0}


def test_sagas_given_up_count_from_zero_before_the_first_one() -> None:
    for status in ("completed", "given_up", "digested"):
        value = REGISTRY.get_sample_value(
            "nexus_notification_sagas_finished_total", {"status": status}
        )
        assert value is not None, status
