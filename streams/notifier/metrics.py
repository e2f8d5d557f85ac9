"""Prometheus metrics of the notifier."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

SAGAS_FINISHED = Counter(
    "nexus_notification_sagas_finished_total", "Sagas that reached a terminal status", ["status"]
)
ATTEMPTS = Counter(
    "nexus_notification_attempts_total", "Delivery attempts by outcome", ["channel", "outcome"]
)
STEP_SECONDS = Histogram("nexus_notifier_step_seconds", "Engine run plus its transaction")
IN_FLIGHT = Gauge("nexus_notifier_sends_in_flight", "Attempts being sent now")
TIMERS = Gauge("nexus_notifier_timers", "Timers kept by this worker")
WAITING = Gauge("nexus_notifier_sends_waiting", "Started attempts waiting for a free sender")
