"""The anomaly detector on synthetic streams: spikes and drops are found within their first
minute; steady traffic, a smooth daily pattern and low-rate noise raise nothing."""

from __future__ import annotations

import math
import random
from bisect import bisect_left
from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from projections.anomalies.detector import (
    Anomaly,
    MinuteCount,
    Reported,
    detect,
    minute_of,
)
from projections.anomalies.events import ANOMALY_DETECTED, anomaly_data, anomaly_event_id
from projections.anomalies.projection import ANOMALIES_PROJECTION
from projections.model import RowCache
from schemas.codec import AvroCodec

T0 = datetime(2025, 3, 3, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
SHARES = {"/home": 0.5, "/pricing": 0.3, "/docs": 0.2}
Rate = Callable[[int, str], float]  # (minute index, page) -> expected events that minute


def poisson(rng: random.Random, mean: float) -> int:
    """Knuth's method at low means, the normal approximation above."""
    if mean >= 30:
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    limit, count, product = math.exp(-mean), 0, rng.random()
    while product > limit:
        count += 1
        product *= rng.random()
    return count


class Stream:
    """One event type as a Poisson process: each minute's arrival seconds, by page."""

    def __init__(self, rate: Rate, minutes: int, seed: int = 7) -> None:
        rng = random.Random(seed)
        self.arrivals = [
            {page: sorted(rng.uniform(0, 60) for _ in range(poisson(rng, rate(n, page))))
             for page in SHARES}
            for n in range(minutes)
        ]  # fmt: skip

    def series(self, now: datetime, lookback: int = 61) -> list[MinuteCount]:
        """The minute rollups as they stand at `now`, over the watch's lookback."""
        current = int((minute_of(now) - T0) / MINUTE)
        elapsed = (now - minute_of(now)).total_seconds()
        found = []
        for n in range(max(0, current - lookback), current + 1):
            seen = 60.0 if n < current else elapsed
            top = {page: bisect_left(times, seen) for page, times in self.arrivals[n].items()}
            if sum(top.values()):  # the worker writes no row for an empty minute
                found.append(MinuteCount(T0 + n * MINUTE, sum(top.values()), top))
        return found


def watch(stream: Stream, checks: Iterable[datetime]) -> list[Anomaly]:
    """Run the detector at each time, remembering what it reported, as the watch does."""
    reported: list[Reported] = []
    found: list[Anomaly] = []
    for now in checks:
        for anomaly in detect("page.view", stream.series(now), now, reported):
            found.append(anomaly)
            reported.append(Reported("page.view", anomaly.direction, anomaly.window_start))
    return found


def every(seconds: int, start_minute: int, end_minute: int) -> list[datetime]:
    return [T0 + timedelta(seconds=s) for s in range(start_minute * 60, end_minute * 60, seconds)]


def steady(per_minute: float) -> Rate:
    return lambda n, page: per_minute * SHARES[page]


SPIKE, DROP = range(40, 43), range(80, 83)


def incidents(n: int, page: str) -> float:
    """300 a minute; three minutes of 4x, all the extra on /pricing; three at 10%."""
    base = 300 * SHARES[page]
    if n in SPIKE:
        return base + (900 if page == "/pricing" else 0)
    return base * 0.1 if n in DROP else base


def test_a_spike_and_a_drop_are_each_found_once_within_their_first_minute() -> None:
    spike, drop = watch(Stream(incidents, 120), every(10, 30, 120))

    assert (spike.direction, spike.window_start) == ("spike", T0 + SPIKE[0] * MINUTE)
    assert spike.detected_at - spike.window_start == timedelta(seconds=20)
    assert 270 <= spike.expected <= 330 and 1000 <= spike.observed <= 1400
    assert spike.score >= 5 and spike.severity == "critical"
    assert spike.breakdown is not None and spike.breakdown.value == "/pricing"
    assert spike.breakdown.observed - spike.breakdown.expected >= 700

    assert (drop.direction, drop.window_start) == ("drop", T0 + DROP[0] * MINUTE)
    assert drop.detected_at - drop.window_start == timedelta(seconds=20)
    assert 270 <= drop.expected <= 330 and drop.observed <= 75
    assert drop.score <= -5 and drop.severity == "critical"
    assert drop.breakdown is not None and drop.breakdown.value == "/home"  # the largest share


def test_a_drop_at_100_a_minute_is_found_within_a_minute_of_its_onset() -> None:
    def quieter(n: int, page: str) -> float:  # 100 a minute, 10% for three minutes
        return 100 * SHARES[page] * (0.1 if n in DROP else 1)

    [drop] = watch(Stream(quieter, 120), every(10, 60, 120))

    assert (drop.direction, drop.window_start) == ("drop", T0 + DROP[0] * MINUTE)
    assert drop.detected_at - drop.window_start <= timedelta(seconds=60)


def test_the_last_complete_minute_is_judged_too() -> None:
    """A check that comes late (after the open minute's first seconds) still finds the onset."""
    stream = Stream(incidents, 120)
    now = T0 + (SPIKE[0] + 1) * MINUTE + timedelta(seconds=5)

    [spike] = detect("page.view", stream.series(now), now)

    assert (spike.window_start, spike.observed > 1000) == (T0 + SPIKE[0] * MINUTE, True)


def test_a_steady_stream_raises_nothing() -> None:
    assert watch(Stream(steady(300), 180), every(10, 0, 180)) == []


def test_a_smooth_daily_pattern_raises_nothing() -> None:
    def daily(n: int, page: str) -> float:  # from 100 a minute at night to 500 by day
        return (300 - 200 * math.cos(2 * math.pi * n / 1440)) * SHARES[page]

    day = 1440
    checks = [T0 + n * MINUTE + timedelta(seconds=s) for n in range(day) for s in (20, 50)]
    assert watch(Stream(daily, day, seed=11), checks) == []


def test_a_pattern_compressed_to_three_hours_raises_nothing() -> None:
    def fast(n: int, page: str) -> float:
        return (300 - 200 * math.cos(2 * math.pi * n / 180)) * SHARES[page]

    assert watch(Stream(fast, 360, seed=5), every(10, 0, 360)) == []


def test_low_rate_noise_raises_nothing_even_when_it_quadruples() -> None:
    """At 3 a minute, bursts are ordinary, and 12 is not enough to matter (min_delta)."""

    def low(n: int, page: str) -> float:
        return (12 if 100 <= n < 103 else 3) * SHARES[page]

    assert watch(Stream(low, 360, seed=3), every(10, 0, 360)) == []


def test_a_new_type_is_not_judged_before_it_has_ten_minutes_of_history() -> None:
    stream = Stream(steady(300), 30)
    now = T0 + 9 * MINUTE + timedelta(seconds=30)
    assert detect("page.view", stream.series(now), now) == []


def test_a_lasting_incident_is_reported_once_and_a_later_one_again() -> None:
    """Ten minutes at 3x: one report, no drop when it ends, and the next one found at once."""

    def lasting(n: int, page: str) -> float:
        return 300 * SHARES[page] * (3 if 40 <= n < 50 or 70 <= n < 72 else 1)

    found = watch(Stream(lasting, 90), every(10, 30, 90))

    assert [(a.direction, a.window_start) for a in found] == [
        ("spike", T0 + 40 * MINUTE),
        ("spike", T0 + 70 * MINUTE),
    ]


def test_a_window_reported_before_is_not_reported_again() -> None:
    stream = Stream(incidents, 60)
    now = T0 + SPIKE[0] * MINUTE + timedelta(seconds=30)
    [spike] = detect("page.view", stream.series(now), now)

    earlier = [Reported("page.view", "spike", spike.window_start)]
    assert detect("page.view", stream.series(now), now, earlier) == []
    assert detect("page.view", stream.series(now), now, [Reported("other", "spike", now)]) != []


def test_the_event_id_depends_on_type_window_and_direction_only() -> None:
    stream = Stream(incidents, 60)
    at = [T0 + SPIKE[0] * MINUTE + timedelta(seconds=s) for s in (20, 50)]
    first, again = (detect("page.view", stream.series(now), now)[0] for now in at)

    assert first.observed != again.observed
    assert anomaly_event_id(first) == anomaly_event_id(again)
    assert anomaly_event_id(first) != anomaly_event_id(replace(first, direction="drop"))


def test_the_event_data_fits_its_schema_and_folds_into_one_row() -> None:
    stream = Stream(incidents, 60)
    now = T0 + SPIKE[0] * MINUTE + timedelta(seconds=20)
    [spike] = detect("page.view", stream.series(now), now)
    data = anomaly_data(spike, "page")
    AvroCodec().validate_data(ANOMALY_DETECTED, data)
    event = {"event_id": anomaly_event_id(spike), "type": ANOMALY_DETECTED, "data": data}
    rows = RowCache()

    later = {**event, "data": {**data, "observed": 1.0}}
    ANOMALIES_PROJECTION.fold(rows, [(ANOMALY_DETECTED, event), (ANOMALY_DETECTED, later)])

    [row], deleted = rows.changes("anomalies")
    assert deleted == [] and row == {"event_id": event["event_id"], **data}
    assert (row["breakdown_property"], row["breakdown_value"]) == ("page", "/pricing")
