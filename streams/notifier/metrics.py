"""Prometheus metrics of the notifier."""

from __future__ import annotations

from collections.abc import Mapping
from typing import get_args

from prometheus_client import Counter, Gauge, Histogram

from sagas.circuit.breaker import Status as CircuitStatus
from sagas.notification.state import TERMINAL

SAGAS_FINISHED = Counter(
    "nexus_notification_sagas_finished_total", "Sagas that reached a terminal status", ["status"]
)
# Present at 0 from the start, so that the first saga given up is an increase (alert rules).
for _status in sorted(TERMINAL):
    SAGAS_FINISHED.labels(status=_status)
ATTEMPTS = Counter(
    "nexus_notification_attempts_total", "Delivery attempts by outcome", ["channel", "outcome"]
)
STEP_SECONDS = Histogram("nexus_notifier_step_seconds", "Engine run plus its transaction")
IN_FLIGHT = Gauge("nexus_notifier_sends_in_flight", "Attempts being sent now")
TIMERS = Gauge("nexus_notifier_timers", "Timers kept by this worker")
WAITING = Gauge("nexus_notifier_sends_waiting", "Started attempts waiting for a free sender")
CIRCUITS = Gauge(
    "nexus_notifier_circuit_state",
    "1 for the state each channel's circuit breaker is in on this worker, 0 for the others",
    ["channel", "state"],
)


def show_circuits(statuses: Mapping[str, str]) -> None:
    """channel -> status, as `SagaEngine.circuit_statuses` gives them."""
    for channel, current in statuses.items():
        for state in get_args(CircuitStatus):
            CIRCUITS.labels(channel=channel, state=state).set(1 if state == current else 0)
