"""`nexus demo`: realistic workspace traffic, so that the analytics dashboard comes alive.

Every ~200 ms the traffic model (infra/cli/demo_traffic.py) yields the events of the tick just
past and they go out as one batch: through `EventBus.ingest` (the default) or `POST
/api/v1/ingest/batch` with a token of scope analytics:write (`--via http`). A sender that
falls behind sends the ticks it missed together, up to MAX_BEHIND_S of them; older ones
are skipped. Incidents are logged as they start, to compare with what the anomaly detector
reports. A JSON summary goes to stdout at the end (after --duration, or on Ctrl-C).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

import structlog

from infra.cli.demo_traffic import Incident, TrafficModel, TrafficParams
from infra.config.clock import utcnow
from infra.config.logging import configure_logging
from infra.config.settings import Settings

TICK_S = 0.2
HTTP_BATCH = 5_000  # events per request: well within the gateway's 10,000 and 5 MiB
MAX_BEHIND_S = 10.0
PROGRESS_EVERY_S = 10.0
SOURCE = "demo"
TOKEN_TTL_S = 12 * 3600
INGEST_PATH = "/api/v1/ingest/batch"
EPSILON = 1e-9  # tick bounds are sums of floats

log = structlog.get_logger()


class DemoError(Exception):
    """The demo cannot go on (say, the gateway refuses its token)."""


class BatchSender(Protocol):
    async def send(self, items: list[dict[str, Any]]) -> tuple[int, int]:
        """Ingest the items; returns (accepted, rejected)."""
        ...

    async def close(self) -> None: ...


class BusSender:
    """Through `EventBus.ingest`, as a service in the platform would track events."""

    def __init__(self, settings: Settings) -> None:
        from streams.bus import EventBus

        self.bus = EventBus(settings)

    async def send(self, items: list[dict[str, Any]]) -> tuple[int, int]:
        result = await self.bus.ingest(items, source=SOURCE)
        return result.accepted, len(result.rejected)

    async def close(self) -> None:
        self.bus.close()


class HttpSender:
    """Through the gateway's batch endpoint, as an outside client would track events."""

    def __init__(self, settings: Settings, url: str) -> None:
        import httpx

        from gateway.auth import TokenVerifier

        self.verifier = TokenVerifier(
            settings.resolved_jwt_secret(), settings.jwt_issuer, settings.jwt_audience
        )
        self.client = httpx.AsyncClient(base_url=url, timeout=30.0)
        self._token, self._renew_at = "", 0.0

    def _authorization(self) -> str:
        if time.monotonic() >= self._renew_at:
            self._token = self.verifier.issue(
                SOURCE, ["analytics:write", "analytics:ingest"], TOKEN_TTL_S
            )
            self._renew_at = time.monotonic() + TOKEN_TTL_S / 2
        return f"Bearer {self._token}"

    async def send(self, items: list[dict[str, Any]]) -> tuple[int, int]:
        accepted = rejected = 0
        for first in range(0, len(items), HTTP_BATCH):
            body = json.dumps(items[first : first + HTTP_BATCH], separators=(",", ":"))
            headers = {"Authorization": self._authorization(), "Content-Type": "application/json"}
            answer = await self.client.post(INGEST_PATH, content=body, headers=headers)
            if answer.status_code in (401, 403):
                raise DemoError(f"the gateway refused the demo's token: {answer.text[:300]}")
            if answer.status_code not in (202, 422):
                raise RuntimeError(f"{INGEST_PATH} answered {answer.status_code}: {answer.text}")
            counts = answer.json()
            accepted, rejected = accepted + counts["accepted"], rejected + counts["rejected"]
        return accepted, rejected

    async def close(self) -> None:
        await self.client.aclose()


@dataclass
class DemoCounts:
    """What the demo did so far; kept outside the run so Ctrl-C still has it."""

    sent: int = 0
    accepted: int = 0
    rejected: int = 0
    failed_batches: int = 0
    skipped_seconds: float = 0.0
    seconds: float = 0.0
    incidents: list[dict[str, Any]] = field(default_factory=list)


class DemoRun:
    """Paces the model's ticks against a monotonic clock and hands them to the sender."""

    def __init__(
        self,
        model: TrafficModel,
        sender: BatchSender,
        counts: DemoCounts,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.model, self.sender, self.counts = model, sender, counts
        self.clock, self.sleep = clock, sleep
        self._next = 0  # the next tick to send, by index

    async def run(self, duration: float | None) -> DemoCounts:
        """Send ticks until `duration` seconds of traffic went out (None: until cancelled)."""
        started = self.clock()
        last_progress = 0.0
        while not self._done(duration):
            elapsed = self.clock() - started
            self.counts.seconds = elapsed
            if elapsed < self._tick_end(duration) - EPSILON:
                await self.sleep(self._tick_end(duration) - elapsed)
                continue
            await self._send_due(elapsed, duration)
            if elapsed - last_progress >= PROGRESS_EVERY_S:
                last_progress = elapsed
                self._progress(elapsed)
        self.counts.seconds = self.clock() - started
        return self.counts

    def _done(self, duration: float | None) -> bool:
        return duration is not None and self._next * TICK_S >= duration - EPSILON

    def _tick_end(self, duration: float | None) -> float:
        """When the next tick ends: TICK_S after it starts, or at `duration`."""
        end = (self._next + 1) * TICK_S
        return end if duration is None else min(end, duration)

    async def _send_due(self, elapsed: float, duration: float | None) -> None:
        """Every tick that ended by `elapsed`, in one send; those too far behind are skipped."""
        if elapsed - self._next * TICK_S > MAX_BEHIND_S:
            skip = math.ceil(round((elapsed - MAX_BEHIND_S) / TICK_S, 6)) - self._next
            self._next += skip
            self.counts.skipped_seconds += skip * TICK_S
            log.warning("demo_behind", skipped_seconds=round(skip * TICK_S, 1))
        items: list[dict[str, Any]] = []
        while not self._done(duration) and self._tick_end(duration) <= elapsed + EPSILON:
            start = self._next * TICK_S
            tick = self.model.tick(start, self._tick_end(duration) - start)
            self._announce(tick.incident)
            items.extend(tick.items)
            self._next += 1
        await self._send(items)

    async def _send(self, items: list[dict[str, Any]]) -> None:
        if not items:
            return
        self.counts.sent += len(items)
        try:
            accepted, rejected = await self.sender.send(items)
        except DemoError:
            raise
        except Exception as exc:  # a broker or gateway hiccup: the demo goes on
            self.counts.failed_batches += 1
            log.warning("demo_send_failed", events=len(items), error=f"{type(exc).__name__}: {exc}")
            return
        self.counts.accepted += accepted
        self.counts.rejected += rejected
        if rejected:
            log.warning("demo_events_rejected", rejected=rejected, accepted=accepted)

    def _announce(self, incident: Incident | None) -> None:
        if incident is None or any(i["number"] == incident.number for i in self.counts.incidents):
            return
        described = describe(incident, self.model.origin)
        self.counts.incidents.append(described)
        log.info("demo_incident", **described)

    def _progress(self, elapsed: float) -> None:
        log.info(
            "demo_progress",
            seconds=round(elapsed),
            sent=self.counts.sent,
            accepted=self.counts.accepted,
            rejected=self.counts.rejected,
            failed_batches=self.counts.failed_batches,
            expected_rate=round(self.model.rate_at(elapsed), 1),
        )


def describe(incident: Incident, origin: datetime) -> dict[str, Any]:
    """An incident as logged and summarised, its bounds as wall-clock times."""
    return {
        "number": incident.number,
        "kind": incident.kind,
        "event_type": incident.event_type,
        "target": incident.target,
        "factor": incident.factor,
        "starts_at": (origin + timedelta(seconds=incident.start)).isoformat(),
        "ends_at": (origin + timedelta(seconds=incident.end)).isoformat(),
    }


def demo(args: argparse.Namespace, settings: Settings) -> int:
    configure_logging(settings.log_level, "demo")
    seed = args.seed if args.seed is not None else random.randrange(1_000_000)
    params = TrafficParams(
        rate=args.rate,
        users=args.users,
        day_seconds=args.day_seconds,
        amplitude=args.amplitude,
        incident_every=args.incident_every,
        seed=seed,
    )
    model = TrafficModel(params, utcnow())
    counts = DemoCounts()
    log.info("demo_started", via=args.via, duration=args.duration, **asdict(params))
    code = 0
    try:
        asyncio.run(_run(model, counts, args, settings))
    except KeyboardInterrupt:
        pass
    except DemoError as exc:
        log.error("demo_stopped", error=str(exc))
        code = 1
    summary = {"via": args.via, "seed": seed, **asdict(counts)}
    summary["events_per_second"] = round(counts.sent / counts.seconds, 1) if counts.seconds else 0
    print(json.dumps(summary), flush=True)
    return code if counts.failed_batches == 0 else 1


async def _run(
    model: TrafficModel, counts: DemoCounts, args: argparse.Namespace, settings: Settings
) -> None:
    url = args.url or f"http://{settings.gateway_host}:{settings.gateway_port}"
    sender: BatchSender = HttpSender(settings, url) if args.via == "http" else BusSender(settings)
    try:
        await DemoRun(model, sender, counts).run(args.duration)
    finally:
        await sender.close()


def demo_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rate", type=float, default=50.0, help="mean events/s (default 50)")
    parser.add_argument("--duration", type=float, help="seconds to run (default: until Ctrl-C)")
    parser.add_argument("--users", type=int, default=500, help="distinct users (default 500)")
    parser.add_argument(
        "--via", choices=["bus", "http"], default="bus",
        help="EventBus.ingest (default) or POST /api/v1/ingest/batch",
    )  # fmt: skip
    parser.add_argument("--url", help="the gateway's base URL for --via http")
    parser.add_argument(
        "--day-seconds", type=float, default=600.0,
        help="length of the compressed day the rate follows (default 600)",
    )  # fmt: skip
    parser.add_argument(
        "--amplitude", type=float, default=0.12,
        help="the day's swing around the mean rate, 0 to <1 (default 0.12)",
    )  # fmt: skip
    parser.add_argument(
        "--incident-every", type=float, default=240.0,
        help="seconds between incidents, 0 for none (default 240)",
    )  # fmt: skip
    parser.add_argument("--seed", type=int, help="makes the traffic repeatable (default random)")
