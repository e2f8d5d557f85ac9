"""The demo's traffic model and its pacing: the daily pattern, incidents, valid events.

Pure: the model is driven by clock values and the runner by a fake clock, so none of this
waits or touches a broker. The last test feeds the traffic to the anomaly detector the way
the analytics worker would, minute rollups every 10 s, and expects it to find the incidents.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from infra.cli.demo import MAX_BEHIND_S, TICK_S, DemoCounts, DemoRun
from infra.cli.demo_traffic import (
    APP_ERROR,
    MIX,
    PAGE_VIEW,
    PAGES,
    SIGNED_IN,
    Incident,
    TrafficModel,
    TrafficParams,
)
from infra.config.settings import PROJECT_ROOT
from projections.anomalies.detector import MinuteCount, Reported, detect, minute_of
from schemas.tracking import TrackedEvent, TrackingValidator
from schemas.tracking_plan import load_plan

ORIGIN = datetime(2026, 1, 1, 12, 0, 20, tzinfo=UTC)  # 20 s into a minute
QUIET = TrafficParams(rate=200.0, incident_every=0)
TOP_PROPERTY = {"page.view": "page", "feature.used": "feature", "app.error": "code",
                "auth.signed_in": "method"}  # fmt: skip


def items(model: TrafficModel, start: float, end: float) -> list[dict[str, Any]]:
    ticks = round((end - start) / TICK_S)
    return [item for n in range(ticks) for item in model.tick(start + n * TICK_S, TICK_S).items]


def clock_of(item: dict[str, Any]) -> float:
    return (datetime.fromisoformat(item["timestamp"]) - ORIGIN).total_seconds()


def test_the_rate_follows_the_compressed_day() -> None:
    model = TrafficModel(QUIET, ORIGIN)
    day, swing = QUIET.day_seconds, QUIET.amplitude
    assert model.rate_at(0) == pytest.approx(QUIET.rate)
    assert model.rate_at(day / 4) == pytest.approx(QUIET.rate * (1 + swing))
    assert model.rate_at(3 * day / 4) == pytest.approx(QUIET.rate * (1 - swing))
    peak = len(items(model, day / 4 - 30, day / 4 + 30)) / 60
    trough = len(items(model, 3 * day / 4 - 30, 3 * day / 4 + 30)) / 60
    # 12,000 events a minute: Poisson noise is under 1%, the day's swing 12%.
    assert peak == pytest.approx(QUIET.rate * (1 + swing), rel=0.03)
    assert trough == pytest.approx(QUIET.rate * (1 - swing), rel=0.03)


def test_a_whole_day_averages_the_rate_with_the_planned_mix() -> None:
    model = TrafficModel(TrafficParams(rate=50.0, incident_every=0), ORIGIN)
    day = items(model, 0, 600)
    assert len(day) / 600 == pytest.approx(50.0, rel=0.03)
    shares = Counter(item["type"] for item in day)
    for event_type, share in MIX.items():
        assert shares[event_type] / len(day) == pytest.approx(share, abs=0.01)
    pages = Counter(item["data"]["page"] for item in day if item["type"] == PAGE_VIEW)
    assert [page for page, _ in pages.most_common(3)] == [page for page, _ in PAGES[:3]]


def test_ticks_are_deterministic_given_the_seed_and_the_clock() -> None:
    one, again = TrafficModel(QUIET, ORIGIN), TrafficModel(QUIET, ORIGIN)
    other = TrafficModel(TrafficParams(rate=200.0, incident_every=0, seed=2), ORIGIN)
    assert one.tick(12.4, TICK_S) == again.tick(12.4, TICK_S)
    assert one.tick(12.4, TICK_S).items != other.tick(12.4, TICK_S).items
    later = one.tick(30.0, TICK_S)
    assert all(30.0 <= clock_of(item) < 30.0 + TICK_S for item in later.items)
    assert [clock_of(i) for i in later.items] == sorted(clock_of(i) for i in later.items)


def test_incidents_take_turns_start_on_whole_minutes_and_last_60_to_90_s() -> None:
    model = TrafficModel(TrafficParams(rate=50.0), ORIGIN)
    incidents = model.incidents(3600)
    assert [i.number for i in incidents] == list(range(1, 15))  # the 15th starts at 3600 s
    assert [i.kind for i in incidents[:3]] == ["page_spike", "error_burst", "signin_drop"]
    for incident in incidents:
        assert 60 <= incident.end - incident.start <= 90
        assert (ORIGIN + timedelta(seconds=incident.start)).second == 0
        assert incident.number * 240 <= incident.start < incident.end < (incident.number + 1) * 240
        assert model.incident_at(incident.start) == incident
        assert model.incident_at(incident.end) is None
        assert model.tick(incident.start + 10, TICK_S).incident == incident
    assert model.incident_at(100.0) is None


def in_incident(model: TrafficModel, incident: Incident) -> tuple[list[Any], list[Any]]:
    """The items of the incident's first minute, and of the same minute a slot earlier."""
    during = items(model, incident.start, incident.start + 60)
    before = items(model, incident.start - 240, incident.start - 180)
    return during, before


@pytest.mark.parametrize("number", [1, 2, 3])
def test_an_incident_moves_its_event_type_as_marked(number: int) -> None:
    model = TrafficModel(TrafficParams(rate=200.0, amplitude=0.0), ORIGIN)
    incident = model.incident(number)
    during, before = in_incident(model, incident)

    def count(found: list[Any], **wanted: Any) -> int:
        return sum(
            item["type"] == incident.event_type
            and all(item["data"].get(k) == v for k, v in wanted.items())
            for item in found
        )

    if incident.kind == "page_spike":
        ratio = count(during, page=incident.target) / count(before, page=incident.target)
        viral = count(during, page=incident.target, referrer="https://news.ycombinator.com/")
        assert viral > count(during, page=incident.target) / 2
    elif incident.kind == "error_burst":
        ratio = count(during) / count(before)
        assert count(during, code=incident.target) > count(during) / 2
    else:
        ratio = count(during) / count(before)
    assert ratio == pytest.approx(incident.factor, rel=0.35)
    assert model.rates(incident.start + 1)[incident.event_type] == pytest.approx(
        model.rates(incident.start - 180)[incident.event_type]
        * (1 + (incident.factor - 1) * (dict(PAGES)[str(incident.target)] / 100))
        if incident.kind == "page_spike"
        else model.rates(incident.start - 180)[incident.event_type] * incident.factor
    )


def test_every_event_matches_the_tracking_plan() -> None:
    plan = load_plan(PROJECT_ROOT / "infra" / "config" / "analytics.toml")
    validator = TrackingValidator(plan)
    model = TrafficModel(TrafficParams(rate=20.0, incident_every=240.0), ORIGIN)
    found = items(model, 280, 900)  # through incidents of all three kinds
    assert {i.kind for i in model.incidents(900)} == {"page_spike", "error_burst", "signin_drop"}
    now = ORIGIN + timedelta(seconds=900)
    for n, item in enumerate(found):
        checked = validator.validate(item, now=now, source="demo", event_id=f"e-{n}")
        assert isinstance(checked, TrackedEvent), (item, checked)
        assert checked.schema == item["type"]  # its own schema, never analytics.generic


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


class RecordingSender:
    def __init__(self, clock: FakeClock, cost: float = 0.0) -> None:
        self.clock, self.cost = clock, cost
        self.batches: list[tuple[float, list[dict[str, Any]]]] = []

    async def send(self, batch: list[dict[str, Any]]) -> tuple[int, int]:
        self.batches.append((self.clock.now, batch))
        self.clock.now += self.cost
        return len(batch), 0

    async def close(self) -> None:
        pass


async def test_the_runner_sends_each_tick_once_it_has_passed() -> None:
    clock = FakeClock()
    sender = RecordingSender(clock)
    model = TrafficModel(TrafficParams(rate=200.0), ORIGIN)
    counts = await DemoRun(model, sender, DemoCounts(), clock=clock, sleep=clock.sleep).run(5.1)
    sent = [item for _, batch in sender.batches for item in batch]
    assert sent == items(model, 0, 5.0) + model.tick(5.0, 0.1).items
    assert counts.sent == counts.accepted == len(sent)
    assert len(sender.batches) == 26  # 25 whole ticks and the last 0.1 s
    assert counts.seconds == pytest.approx(5.1)
    for at, batch in sender.batches:
        assert all(clock_of(item) <= at - 1000.0 for item in batch)  # never from the future


async def test_a_slow_sender_catches_up_and_skips_what_is_too_old() -> None:
    clock = FakeClock()
    sender = RecordingSender(clock, cost=MAX_BEHIND_S + 2.0)
    model = TrafficModel(TrafficParams(rate=100.0), ORIGIN)
    counts = await DemoRun(model, sender, DemoCounts(), clock=clock, sleep=clock.sleep).run(30.0)
    assert len(sender.batches[1][1]) > 10 * TICK_S * 100  # every tick missed, in one send
    # Sends end at 12.2, 24.2 and 36.2 s, each 12 s after the ticks it missed began: 2 s
    # more than MAX_BEHIND_S, skipped each time.
    assert counts.skipped_seconds == pytest.approx(6.0)
    sent = sum(len(batch) for _, batch in sender.batches)
    assert sent == pytest.approx(100.0 * (30.0 - counts.skipped_seconds), rel=0.1)


async def test_the_runner_announces_incidents_once() -> None:
    clock = FakeClock()
    model = TrafficModel(TrafficParams(rate=5.0), ORIGIN)
    run = DemoRun(model, RecordingSender(clock), DemoCounts(), clock=clock, sleep=clock.sleep)
    counts = await run.run(600.0)
    assert [i["number"] for i in counts.incidents] == [1, 2]
    first = model.incident(1)
    assert counts.incidents[0]["starts_at"] == (ORIGIN + timedelta(seconds=first.start)).isoformat()
    assert counts.incidents[0]["target"] == first.target


class MinuteRollups:
    """Per type and minute, the count of each top-property value: the rollups in small."""

    def __init__(self) -> None:
        self.tops: dict[str, dict[datetime, Counter[str]]] = defaultdict(
            lambda: defaultdict(Counter)
        )

    def add(self, found: list[dict[str, Any]]) -> None:
        for item in found:
            minute = minute_of(datetime.fromisoformat(item["timestamp"]))
            self.tops[item["type"]][minute][str(item["data"][TOP_PROPERTY[item["type"]]])] += 1

    def series(self, event_type: str) -> list[MinuteCount]:
        minutes = sorted(self.tops[event_type].items())
        return [MinuteCount(m, sum(top.values()), dict(top)) for m, top in minutes]


def test_the_anomaly_detector_finds_the_incidents_and_nothing_else() -> None:
    model = TrafficModel(TrafficParams(rate=50.0, seed=1), ORIGIN)
    rollups, reported, detected = MinuteRollups(), list[Reported](), []
    for step in range(1, 24 * 6 + 1):  # 24 minutes, checked every 10 s as the worker does
        rollups.add(items(model, (step - 1) * 10.0, step * 10.0))
        now = ORIGIN + timedelta(seconds=step * 10.0)
        for event_type in sorted(rollups.tops):
            for anomaly in detect(event_type, rollups.series(event_type), now, reported):
                reported.append(Reported(event_type, anomaly.direction, anomaly.window_start))
                detected.append(anomaly)
    incidents = model.incidents(24 * 60)
    # The detector judges a minute only with 10 minutes of history: from the second incident.
    expected = [(i.event_type, "drop" if i.factor < 1 else "spike") for i in incidents[1:]]
    assert [(a.event_type, a.direction) for a in detected] == expected
    for anomaly, incident in zip(detected, incidents[1:], strict=True):
        start = ORIGIN + timedelta(seconds=incident.start)
        assert start <= anomaly.window_start < ORIGIN + timedelta(seconds=incident.end)
        if incident.target is not None:
            assert anomaly.breakdown is not None and anomaly.breakdown.value == incident.target
    assert {APP_ERROR, SIGNED_IN, PAGE_VIEW} == {a.event_type for a in detected}
