"""The traffic model behind `nexus demo`: what a busy workspace's users do, tick by tick.

Page views over pages of skewed popularity, sign-ins, feature use with durations and app
errors, at a rate that rises and falls with a compressed day (a sinusoid of `day_seconds`),
and now and then an incident: a top page's views x5, sign-ins falling to a twentieth, or
a burst of one error code, for 60-90 s from a whole minute, so the anomaly detector has
something to find.

Pure and deterministic: a tick's events depend only on the parameters (the seed among
them), the tick's clock value (seconds since the demo began) and `origin`, the wall-clock
time of clock value 0. Items are shaped as `POST /api/v1/ingest/batch` takes them.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

PAGE_VIEW, SIGNED_IN, FEATURE_USED, APP_ERROR = (
    "page.view",
    "auth.signed_in",
    "feature.used",
    "app.error",
)
# Shares of the traffic by event type, at any point of the day outside incidents.
MIX = {PAGE_VIEW: 0.64, FEATURE_USED: 0.22, SIGNED_IN: 0.09, APP_ERROR: 0.05}
PAGES = (
    ("/dashboard", 36.0),
    ("/projects", 20.0),
    ("/reports", 13.0),
    ("/settings", 9.0),
    ("/billing", 7.0),
    ("/docs", 6.0),
    ("/team", 5.0),
    ("/integrations", 4.0),
)
REFERRERS = (
    (None, 70.0),
    ("https://www.google.com/", 15.0),
    ("https://github.com/", 8.0),
    ("https://news.ycombinator.com/", 4.0),
    ("https://t.co/", 3.0),
)
VIRAL_REFERRER = "https://news.ycombinator.com/"  # where a page spike's extra views come from
METHODS = (("password", 55.0), ("sso", 30.0), ("magic_link", 15.0))
# (feature, share, median milliseconds)
FEATURES = (
    ("search", 30.0, 900.0),
    ("filter", 20.0, 600.0),
    ("comment", 15.0, 12_000.0),
    ("share_link", 12.0, 2_000.0),
    ("export_csv", 10.0, 4_500.0),
    ("bulk_edit", 8.0, 20_000.0),
    ("api_key_created", 5.0, 3_000.0),
)
ERRORS = (
    ("E_VALIDATION", 40.0, "A field is invalid"),
    ("E_NOT_FOUND", 25.0, "Not found"),
    ("E_TIMEOUT", 20.0, "The request timed out"),
    ("E_RATE_LIMITED", 10.0, "Too many requests"),
    ("E_INTERNAL", 5.0, "Something went wrong"),
)
USERS_PER_WORKSPACE = 25

IncidentKind = Literal["page_spike", "signin_drop", "error_burst"]
KINDS: tuple[IncidentKind, ...] = ("page_spike", "error_burst", "signin_drop")
FACTORS: dict[IncidentKind, float] = {"page_spike": 5.0, "signin_drop": 0.05, "error_burst": 8.0}
EVENT_TYPES: dict[IncidentKind, str] = {
    "page_spike": PAGE_VIEW,
    "signin_drop": SIGNED_IN,
    "error_burst": APP_ERROR,
}


@dataclass(frozen=True)
class TrafficParams:
    rate: float  # mean events/s over a day, outside incidents
    users: int = 500
    day_seconds: float = 600.0
    amplitude: float = 0.12  # the day's swing: the rate goes from (1 - a) to (1 + a) x `rate`
    incident_every: float = 240.0  # seconds; 0 for none
    incident_seconds: tuple[float, float] = (60.0, 90.0)
    seed: int = 1

    def __post_init__(self) -> None:
        if self.rate <= 0 or self.users < 1 or self.day_seconds <= 0:
            raise ValueError("rate, users and day_seconds must be positive")
        if not 0 <= self.amplitude < 1:
            raise ValueError("amplitude must be in [0, 1)")
        shortest, longest = self.incident_seconds
        # An incident starts up to a quarter of `incident_every` and a minute after its slot,
        # and must end before the next slot begins.
        if self.incident_every and not 0 < shortest <= longest <= self.incident_every * 0.75 - 60:
            raise ValueError("incidents must last at most 3/4 of incident_every less a minute")


@dataclass(frozen=True)
class Incident:
    """Over [start, end) (clock seconds), `event_type`'s rate (of `target` only, when set)
    is multiplied by `factor`."""

    number: int  # 1, 2, ... in order of start
    kind: IncidentKind
    event_type: str
    target: str | None  # the page of a spike, the code of an error burst
    factor: float
    start: float
    end: float

    def covers(self, clock: float) -> bool:
        return self.start <= clock < self.end


@dataclass(frozen=True)
class Tick:
    """The items of [start, start + seconds), and the incident under way at its start."""

    start: float
    seconds: float
    items: list[dict[str, Any]]
    incident: Incident | None


@dataclass(frozen=True)
class _Channel:
    """A stream of one event type at `rate`/s; `variant` says how its data is drawn."""

    event_type: str
    rate: float
    variant: Literal["usual", "spike", "burst"] = "usual"


class TrafficModel:
    """The traffic of the clock values from 0, clock value 0 being the wall-clock `origin`."""

    def __init__(self, params: TrafficParams, origin: datetime) -> None:
        self.params, self.origin = params, origin
        self._pages = _shares(PAGES)

    def day_factor(self, clock: float) -> float:
        """The daily pattern: 1 at clock 0 and rising, between 1 - amplitude and 1 + it."""
        phase = 2 * math.pi * clock / self.params.day_seconds
        return 1.0 + self.params.amplitude * math.sin(phase)

    def incident(self, number: int) -> Incident:
        """The `number`-th incident (from 1): kinds take turns, each a bit after its slot.

        It starts on a whole minute of the wall clock, so that it fills at least one of the
        rollups' minutes: an incident split over two minutes is half as visible in each.
        """
        every = self.params.incident_every
        rng = random.Random(f"{self.params.seed}:incident:{number}")
        start = self._next_minute(number * every + rng.uniform(0.0, every / 4))
        kind = KINDS[(number - 1) % len(KINDS)]
        target = None
        if kind == "page_spike":
            target = rng.choice([page for page, _ in PAGES[:2]])
        elif kind == "error_burst":
            target = rng.choice([code for code, _, _ in ERRORS[1:4]])
        end = start + rng.uniform(*self.params.incident_seconds)
        return Incident(number, kind, EVENT_TYPES[kind], target, FACTORS[kind], start, end)

    def _next_minute(self, clock: float) -> float:
        """The clock value of the first whole wall-clock minute at or after `clock`."""
        at = self.origin.timestamp() + clock
        return math.ceil(at / 60) * 60 - self.origin.timestamp()

    def incident_at(self, clock: float) -> Incident | None:
        if not self.params.incident_every or clock < self.params.incident_every:
            return None
        # Incident n starts at or after n * every and ends before (n + 1) * every.
        candidate = self.incident(int(clock // self.params.incident_every))
        return candidate if candidate.covers(clock) else None

    def incidents(self, until: float) -> list[Incident]:
        """Every incident that starts before clock value `until`."""
        if not self.params.incident_every:
            return []
        found = []
        for number in range(1, int(until // self.params.incident_every) + 1):
            incident = self.incident(number)
            if incident.start < until:
                found.append(incident)
        return found

    def rates(self, clock: float) -> dict[str, float]:
        """Expected events/s by type at `clock`, incident included."""
        rates: dict[str, float] = {}
        for channel in self._channels(clock):
            rates[channel.event_type] = rates.get(channel.event_type, 0.0) + channel.rate
        return rates

    def rate_at(self, clock: float) -> float:
        """Expected events/s of all types at `clock`."""
        return sum(channel.rate for channel in self._channels(clock))

    def tick(self, start: float, seconds: float) -> Tick:
        """The items of the clock interval [start, start + seconds), sorted by timestamp."""
        rng = random.Random(f"{self.params.seed}:tick:{round(start * 1000)}")
        incident = self.incident_at(start)
        drawn: list[tuple[float, dict[str, Any]]] = []
        for channel in self._channels(start + seconds / 2):
            for _ in range(_poisson(rng, channel.rate * seconds)):
                at = start + rng.random() * seconds
                drawn.append((at, self._item(rng, channel, incident, at)))
        drawn.sort(key=lambda pair: pair[0])
        return Tick(start, seconds, [item for _, item in drawn], incident)

    def _channels(self, clock: float) -> list[_Channel]:
        base = self.params.rate * self.day_factor(clock)
        channels = [_Channel(kind, base * share) for kind, share in MIX.items()]
        incident = self.incident_at(clock)
        if incident is None:
            return channels
        if incident.kind == "signin_drop":
            return [
                _Channel(c.event_type, c.rate * incident.factor) if c.event_type == SIGNED_IN else c
                for c in channels
            ]
        usual = base * MIX[incident.event_type]
        if incident.kind == "page_spike":
            extra = usual * self._pages[str(incident.target)] * (incident.factor - 1)
            return [*channels, _Channel(PAGE_VIEW, extra, "spike")]
        return [*channels, _Channel(APP_ERROR, usual * (incident.factor - 1), "burst")]

    def _item(
        self,
        rng: random.Random,
        channel: _Channel,
        incident: Incident | None,
        at: float,
    ) -> dict[str, Any]:
        user = int(self.params.users * rng.random() ** 2)  # a few users do most of it
        item: dict[str, Any] = {
            "type": channel.event_type,
            "user_id": f"demo-user-{user}",
            "timestamp": _iso(self.origin + timedelta(seconds=at)),
        }
        target = incident.target if incident is not None and channel.variant != "usual" else None
        item["data"] = self._data(rng, channel, user, target)
        return item

    def _data(
        self, rng: random.Random, channel: _Channel, user: int, target: str | None
    ) -> dict[str, Any]:
        if channel.event_type == PAGE_VIEW:
            page = target or _pick(rng, PAGES)
            referrer = VIRAL_REFERRER if target else _pick(rng, REFERRERS)
            return {"page": page, "referrer": referrer, "duration_ms": _duration(rng, 8_000.0)}
        if channel.event_type == SIGNED_IN:
            return {"method": _pick(rng, METHODS)}
        if channel.event_type == FEATURE_USED:
            feature, _, median_ms = rng.choices(FEATURES, [w for _, w, _ in FEATURES])[0]
            workspace = f"demo-ws-{user // USERS_PER_WORKSPACE}"
            return {
                "feature": feature,
                "workspace_id": workspace,
                "duration_ms": _duration(rng, median_ms),
            }
        code, _, message = next(e for e in ERRORS if e[0] == target) if target else _error(rng)
        return {"code": code, "page": _pick(rng, PAGES), "message": message}


def _shares(weighted: Sequence[tuple[str, float]]) -> dict[str, float]:
    total = sum(weight for _, weight in weighted)
    return {value: weight / total for value, weight in weighted}


def _pick(rng: random.Random, weighted: Sequence[tuple[Any, float]]) -> Any:
    return rng.choices(weighted, [weight for _, weight in weighted])[0][0]


def _error(rng: random.Random) -> tuple[str, float, str]:
    return rng.choices(ERRORS, [weight for _, weight, _ in ERRORS])[0]


def _duration(rng: random.Random, median_ms: float) -> int:
    """Log-normal around the median, as time spent on things tends to be; capped at 30 min."""
    return min(int(rng.lognormvariate(math.log(median_ms), 0.8)), 1_800_000)


def _poisson(rng: random.Random, mean: float) -> int:
    """A Poisson draw: exact for small means, the normal approximation for large ones."""
    if mean <= 0:
        return 0
    if mean > 50:
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    limit, count, product = math.exp(-mean), 0, rng.random()
    while product > limit:
        count += 1
        product *= rng.random()
    return count


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
