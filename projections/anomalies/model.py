"""What the anomaly detector takes and gives: its parameters, minute counts, anomalies."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

Direction = Literal["spike", "drop"]
Severity = Literal["warning", "critical"]
MINUTE = timedelta(minutes=1)


@dataclass(frozen=True)
class DetectorParams:
    baseline_minutes: int = 30  # the minutes before a window: its baseline's spread
    trend_minutes: int = 15  # the last of those: the line its expected count is read off
    min_history: int = 10  # with fewer minutes of history a window is not judged
    partial_after_s: float = 15.0  # the open minute is judged once this far into it
    min_score: float = 5.0  # |robust z|
    min_change: float = 0.5  # |observed - expected| / expected
    min_delta: float = 25.0  # |observed - expected| in events seen (so far, in the open minute)
    critical_ratio: float = 3.0  # observed/expected at least this (or at most 1/this)
    hold: float = 0.5  # an incident goes on while its minutes pass this fraction of each


DEFAULT_PARAMS = DetectorParams()


@dataclass(frozen=True)
class MinuteCount:
    """One minute of a type, summed over partitions; `top` counts the breakdown's values."""

    start: datetime
    count: int
    top: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Breakdown:
    value: str
    expected: float
    observed: float


@dataclass(frozen=True)
class Anomaly:
    event_type: str
    window_start: datetime
    direction: Direction
    expected: float
    observed: float  # per minute: extrapolated when detected_at < window_end
    score: float
    severity: Severity
    breakdown: Breakdown | None
    detected_at: datetime
    granularity: str = "minute"

    @property
    def window_end(self) -> datetime:
        return self.window_start + MINUTE


@dataclass(frozen=True)
class Reported:
    """An anomaly published earlier, as far as suppressing repeats needs to know it."""

    event_type: str
    direction: Direction
    window_start: datetime


def minute_of(at: datetime) -> datetime:
    return at.replace(second=0, microsecond=0)


def add_up(tops: Iterable[Mapping[str, int]]) -> dict[str, int]:
    """Top-value counts of several rows (partitions, minutes) added up."""
    summed: dict[str, int] = {}
    for top in tops:
        for value, count in top.items():
            summed[value] = summed.get(value, 0) + count
    return summed
