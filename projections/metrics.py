"""Prometheus metrics of the projections, served on the projector's /metrics."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

EVENTS_APPLIED = Counter(
    "nexus_projection_events_applied_total", "Events applied to a read model", ["projection"]
)
BATCH_SECONDS = Histogram(
    "nexus_projection_batch_seconds",
    "Time to apply one batch, transaction included",
    ["projection"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
LAG = Gauge(
    "nexus_projection_lag_messages",
    "Offsets between the topic's high watermarks and the projection's position",
    ["projection"],
)
RETRYING = Gauge(
    "nexus_projection_retrying_events",
    "Events a handler failed on, tried again before they are dead-lettered (handler_failed)",
    ["projection"],
)
