"""Spikes and drops in an event type's per-minute rate, found within a minute of their onset.

Pure: the series and the evaluation time `now` come in, anomalies go out. Each evaluation
judges the last complete minute and, once `partial_after_s` seconds of it have passed, the
open minute at its extrapolated rate. A minute is anomalous when it is far from a robust
baseline fitted to the minutes before it (`baseline.fit`) by every measure at once: the
robust z-score, the relative change and the change in events seen, so that Poisson noise
at low rates and a smooth daily pattern do not count. An incident is reported once: a
minute that continues one already reported (`series.MinuteSeries`) is not reported again.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from projections.anomalies.model import (
    DEFAULT_PARAMS,
    MINUTE,
    Anomaly,
    Breakdown,
    DetectorParams,
    Direction,
    MinuteCount,
    Reported,
    Severity,
    add_up,
    minute_of,
)
from projections.anomalies.series import MinuteSeries

__all__ = [
    "DEFAULT_PARAMS",
    "MINUTE",
    "Anomaly",
    "Breakdown",
    "DetectorParams",
    "Direction",
    "MinuteCount",
    "Reported",
    "Severity",
    "add_up",
    "detect",
    "minute_of",
]


def detect(
    event_type: str,
    series: Sequence[MinuteCount],
    now: datetime,
    reported: Iterable[Reported] = (),
    params: DetectorParams = DEFAULT_PARAMS,
) -> list[Anomaly]:
    """New anomalies of `event_type` at `now` (timezone-aware), earliest window first.

    `series` holds the type's minutes up to `now`'s, the open one counted so far; minutes
    missing after its first one held no events. `reported` are the anomalies published
    before, of any type, at least as far back as the series goes.
    """
    if not series:
        return []
    current = minute_of(now)
    minutes = MinuteSeries(event_type, series, params, reported, until=current)
    found: list[Anomaly] = []
    for window, fraction in _windows(now, params):
        anomaly = minutes.judge(window, fraction, now)
        if anomaly is not None and not minutes.continues(anomaly):
            found.append(anomaly)
            minutes.mark(anomaly)
    return found


def _windows(now: datetime, params: DetectorParams) -> list[tuple[datetime, float]]:
    """(window start, fraction of it seen) for the last complete and the open minute."""
    current = minute_of(now)
    elapsed = (now - current).total_seconds()
    windows = [(current - MINUTE, 1.0)]
    if elapsed >= params.partial_after_s:
        windows.append((current, elapsed / 60.0))
    return windows
