"""An anomaly as an `analytics.anomaly_detected` event: its deterministic id and its data.

The id depends only on (type, window, direction), so detecting the same anomaly again, in
another evaluation or after a restart, yields the same event and the read model one row.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from projections.anomalies.model import Anomaly

ANOMALY_DETECTED = "analytics.anomaly_detected"
# Fixed forever: changing it would give every anomaly already reported a new id.
ANOMALY_NAMESPACE = uuid.UUID("7a818909-d363-421f-8153-8e6a191f108a")


def anomaly_event_id(anomaly: Anomaly) -> str:
    window = f"{_utc(anomaly.window_start)}/{_utc(anomaly.window_end)}"
    name = f"{anomaly.event_type}|{window}|{anomaly.direction}"
    return str(uuid.uuid5(ANOMALY_NAMESPACE, name))


def anomaly_data(anomaly: Anomaly, breakdown_property: str | None) -> dict[str, Any]:
    """The event's data; `breakdown_property` is the property the breakdown's values are of."""
    breakdown = anomaly.breakdown
    return {
        "event_type": anomaly.event_type,
        "granularity": anomaly.granularity,
        "window_start": anomaly.window_start,
        "window_end": anomaly.window_end,
        "direction": anomaly.direction,
        "expected": anomaly.expected,
        "observed": anomaly.observed,
        "score": anomaly.score,
        "severity": anomaly.severity,
        "breakdown_property": breakdown_property if breakdown is not None else None,
        "breakdown_value": None if breakdown is None else breakdown.value,
        "breakdown_expected": None if breakdown is None else breakdown.expected,
        "breakdown_observed": None if breakdown is None else breakdown.observed,
        "detected_at": anomaly.detected_at,
    }


def _utc(at: datetime) -> str:
    return at.astimezone(UTC).isoformat()
