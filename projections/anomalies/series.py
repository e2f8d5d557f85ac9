"""One event type's recent minutes as the detector reads them: baselines, verdicts, incidents.

An incident starts at a reported window and goes on through each following minute that
still deviates the same way by `hold` times every threshold. Its minutes are left out of
later baselines, so that neither its end nor the next incident is judged against a
baseline it has pulled. When they leave too little history, the incident has lasted long
enough to be the new normal, and the baseline includes them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from projections.analytics.sketches import OTHER
from projections.anomalies.baseline import Baseline, fit, noise
from projections.anomalies.model import (
    MINUTE,
    Anomaly,
    Breakdown,
    DetectorParams,
    Direction,
    MinuteCount,
    Reported,
    Severity,
    add_up,
)


@dataclass(frozen=True)
class Verdict:
    minutes: list[datetime]  # the baseline's
    baseline: Baseline
    observed: float
    direction: Direction


class MinuteSeries:
    """One type's minutes, with the incidents reported so far and followed to `until`."""

    def __init__(
        self,
        event_type: str,
        series: Sequence[MinuteCount],
        params: DetectorParams,
        reported: Iterable[Reported],
        until: datetime,
    ) -> None:
        """`series` must not be empty; incidents are followed up to the minute `until`."""
        self.event_type, self.params = event_type, params
        self.minutes: Mapping[datetime, MinuteCount] = {m.start: m for m in series}
        self.first = min(self.minutes)
        self.incidents: dict[datetime, Direction] = {}
        self._follow([r for r in reported if r.event_type == event_type], until)

    def count(self, minute: datetime) -> int:
        found = self.minutes.get(minute)
        return 0 if found is None else found.count

    def judge(self, window: datetime, fraction: float, now: datetime) -> Anomaly | None:
        """The window as an anomaly, if it is one; `fraction` of it has been seen."""
        verdict = self.verdict(window, fraction)
        if verdict is None:
            return None
        baseline, observed, direction = verdict.baseline, verdict.observed, verdict.direction
        return Anomaly(
            event_type=self.event_type,
            window_start=window,
            direction=direction,
            expected=round(baseline.expected, 1),
            observed=round(observed, 1),
            score=round((observed - baseline.expected) / noise(baseline, fraction), 2),
            severity=_severity(baseline.expected, observed, self.params),
            breakdown=self._breakdown(verdict, window, fraction),
            detected_at=now,
        )

    def verdict(self, window: datetime, fraction: float, scale: float = 1.0) -> Verdict | None:
        """The window's deviation if it passes every threshold, each times `scale`."""
        minutes = self._baseline_minutes(window)
        if len(minutes) < self.params.min_history:
            return None
        points = [((m - window) / MINUTE, float(self.count(m))) for m in minutes]
        baseline = fit(points, self.params.trend_minutes)
        observed = self.count(window) / fraction
        direction = _direction(baseline, observed, fraction, self.params, scale)
        return None if direction is None else Verdict(minutes, baseline, observed, direction)

    def continues(self, anomaly: Anomaly) -> bool:
        """Whether the anomaly is part of an incident already reported."""
        since = anomaly.window_start - MINUTE
        return any(
            minute >= since and direction == anomaly.direction
            for minute, direction in self.incidents.items()
        )

    def mark(self, anomaly: Anomaly) -> None:
        self.incidents[anomaly.window_start] = anomaly.direction

    def _follow(self, reported: Sequence[Reported], until: datetime) -> None:
        starts = {r.window_start: r.direction for r in reported}
        minute = self.first
        while minute < until:
            held = self.incidents.get(minute - MINUTE)
            if minute in starts:
                self.incidents[minute] = starts[minute]
            elif held is not None:
                going_on = self.verdict(minute, 1.0, self.params.hold)
                if going_on is not None and going_on.direction == held:
                    self.incidents[minute] = held
            minute += MINUTE
        self.incidents.update((m, d) for m, d in starts.items() if m >= until)

    def _baseline_minutes(self, window: datetime) -> list[datetime]:
        start = max(self.first, window - self.params.baseline_minutes * MINUTE)
        span = [start + n * MINUTE for n in range(int((window - start) / MINUTE))]
        calm = [m for m in span if m not in self.incidents]
        return calm if len(calm) >= self.params.min_history else span

    def _breakdown(self, verdict: Verdict, window: datetime, fraction: float) -> Breakdown | None:
        """The value whose count moved most, in the verdict's direction, from its share."""
        total = sum(self.count(m) for m in verdict.minutes)
        shares = add_up(self.minutes[m].top for m in verdict.minutes if m in self.minutes)
        seen = self.minutes[window].top if window in self.minutes else {}
        expected = verdict.baseline.expected
        moves = [
            Breakdown(
                value,
                round(expected * shares.get(value, 0) / total, 1) if total else 0.0,
                round(seen.get(value, 0) / fraction, 1),
            )
            for value in sorted((set(shares) | set(seen)) - {OTHER})
        ]
        sign = 1 if verdict.direction == "spike" else -1
        best = max(moves, key=lambda b: sign * (b.observed - b.expected), default=None)
        return best if best is not None and sign * (best.observed - best.expected) > 0 else None


def _direction(
    baseline: Baseline, observed: float, fraction: float, params: DetectorParams, scale: float
) -> Direction | None:
    delta = observed - baseline.expected
    score = delta / noise(baseline, fraction)
    change = abs(delta) / max(baseline.expected, 1.0)
    if abs(score) < scale * params.min_score or change < scale * params.min_change:
        return None
    if abs(delta) * fraction < scale * params.min_delta:  # events seen, not extrapolated
        return None
    return "spike" if delta > 0 else "drop"


def _severity(expected: float, observed: float, params: DetectorParams) -> Severity:
    ratio = observed / max(expected, 1.0)
    extreme = ratio >= params.critical_ratio or ratio <= 1.0 / params.critical_ratio
    return "critical" if extreme else "warning"
