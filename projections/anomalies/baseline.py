"""A robust baseline for a per-minute count series: Theil-Sen lines and the MAD about them.

The expected count comes from a line through the most recent minutes, short enough to
follow a daily rise and fall instead of lagging behind it as a plain median would. The
spread comes from the whole history, long enough for a steady estimate. Minutes far off a
resistant line through the whole history (an earlier incident) are left out of both: a
recent one would otherwise tilt the short line most, just where it is extrapolated.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import median

MAD_TO_SIGMA = 1.4826  # the MAD of a normal distribution times this is its standard deviation
Points = Sequence[tuple[float, float]]


@dataclass(frozen=True)
class Baseline:
    """What a minute is expected to hold, and how far a normal minute strays from that."""

    expected: float
    sigma: float
    points: int  # the minutes the expected count was extrapolated from


def fit(points: Points, recent: int, reject: float = 4.0) -> Baseline:
    """The baseline of minute 0 from earlier (minute, count) points, oldest first.

    Points more than `reject` spreads off a line through all of them are left out; the
    last `recent` of the others give the expected count, and all of them the spread.
    There must be at least two points, and `recent` at least two.
    """
    kept = _typical(points, reject)
    trend = _Line.through(kept[-recent:])
    return Baseline(
        expected=max(trend.at(0), 0.0),
        sigma=_Line.through(kept).spread(kept),
        points=len(kept[-recent:]),
    )


def noise(baseline: Baseline, fraction: float) -> float:
    """The standard deviation of a minute's count, seen over `fraction` of it and scaled up.

    Counts are at least Poisson-noisy, so the spread is never below sqrt(expected); a line
    extrapolated one step past n points is itself uncertain by about 4/n of that variance;
    and a part of a minute scaled to a whole one adds expected * (1/fraction - 1).
    """
    minute = max(baseline.sigma**2, baseline.expected, 1.0) * (1.0 + 4.0 / baseline.points)
    return math.sqrt(minute + baseline.expected * (1.0 / fraction - 1.0))


def _typical(points: Points, reject: float) -> Points:
    """`points` without those more than `reject` spreads off the line through them all."""
    line = _Line.resisting(points)
    level = median(y for _, y in points)
    spread = max(line.spread(points), math.sqrt(max(level, 1.0)))
    kept = [(x, y) for x, y in points if abs(y - line.at(x)) <= reject * spread]
    return kept if len(kept) >= 2 else points


@dataclass(frozen=True)
class _Line:
    intercept: float
    slope: float

    @classmethod
    def through(cls, points: Points) -> _Line:
        """The Theil-Sen line: the median pairwise slope, then the median intercept."""
        slope = median(
            (yj - yi) / (xj - xi) for n, (xi, yi) in enumerate(points) for xj, yj in points[n + 1 :]
        )
        return cls(median(y - slope * x for x, y in points), slope)

    @classmethod
    def resisting(cls, points: Points) -> _Line:
        """Siegel's repeated-median line: barely tilted by up to half the points being off
        together (a whole incident), where Theil-Sen's pairwise median tilts at a third."""
        slope = median(
            median((yj - yi) / (xj - xi) for xj, yj in points if xj != xi) for xi, yi in points
        )
        return cls(median(y - slope * x for x, y in points), slope)

    def at(self, x: float) -> float:
        return self.intercept + self.slope * x

    def spread(self, points: Points) -> float:
        """A robust standard deviation of the points about the line."""
        return MAD_TO_SIGMA * median(abs(y - self.at(x)) for x, y in points)
