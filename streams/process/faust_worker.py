"""Runs a Faust app as a `streams.process.serve.Process`: what the Faust-built processes share.

`FaustWatch` is the watchdog's eyes inside a Faust app, so a Faust process tells the truth
about itself like any other:
- a timer beats the heartbeat of the app's event loop: a blocked loop stops beating;
- each agent beats its own heartbeat while it works on a batch, and is excused while it
  waits for the next one (`AgentBeat`);
- every `check_every_s` the timer compares the consumer's positions with the broker's end
  offsets while no agent is busy: positions that stay put although messages wait past them
  mean a consumer that stopped fetching, a fatal error for the watchdog, and the process
  exits for its supervisor to start a fresh one (streams.kafka.progress);
- the process is ready only while it holds partitions of every topic its agents consume.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, cast

import faust
import structlog
from faust.types import TP

from streams.kafka.progress import ProgressCheck
from streams.process.watchdog import Heartbeat, Watchdog

log = structlog.get_logger()
TICK_S = 1.0


def faust_run(app: faust.App, log_level: str) -> Callable[[threading.Event], None]:
    """The app's worker, run in the foreground. Faust's worker takes over SIGTERM and SIGINT
    itself and returns once it has stopped its agents and committed their offsets; a
    crashed worker raises SystemExit with a non-zero code, which `serve` turns into an exit."""

    def run(_stop: threading.Event) -> None:
        faust.Worker(app, loglevel=log_level.upper(), quiet=True).execute_from_commandline()

    return run


class AgentBeat:
    """An agent's heartbeat: `busy()` when a batch arrives, `idle()` once it is done.

    The work itself (in a thread) may `beat()` while it retries, to show it is not stuck.
    """

    def __init__(self, heartbeat: Heartbeat) -> None:
        self._heartbeat = heartbeat
        self.working = False
        heartbeat.idle()

    def busy(self) -> None:
        self.working = True
        self._heartbeat.busy()

    def beat(self) -> None:
        self._heartbeat.beat()

    def idle(self) -> None:
        self.working = False
        self._heartbeat.idle()


class FaustWatch:
    """Wires a watchdog into `app`: loop heartbeat, agent heartbeats, stall check, readiness."""

    def __init__(
        self,
        app: faust.App,
        watchdog: Watchdog,
        topics: Iterable[str],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.app, self.watchdog, self.topics = app, watchdog, frozenset(topics)
        self.agents: list[AgentBeat] = []
        self.assigned: set[TP] = set()
        self._loop = watchdog.heartbeat("faust event loop")
        self._progress: ProgressCheck[TP] = ProgressCheck(watchdog.bound_s, clock)
        self._positions: dict[TP, int] = {}
        watchdog.require("no partitions of every topic assigned", self.serving)
        app.timer(interval=TICK_S)(self._tick)
        cast(Any, app.on_partitions_assigned).connect(self._on_assigned)  # stubs: no coroutines

    def agent(self, name: str) -> AgentBeat:
        beat = AgentBeat(self.watchdog.heartbeat(f"agent {name}"))
        self.agents.append(beat)
        return beat

    def serving(self) -> bool:
        return self.topics <= {tp.topic for tp in self.assigned}

    async def _on_assigned(self, _sender: Any, assigned: set[TP], **_: Any) -> None:
        self.assigned = set(assigned)
        self._positions = {}
        self._progress.advanced()

    async def _tick(self) -> None:
        self._loop.beat()
        if any(agent.working for agent in self.agents) or not self.assigned:
            self._progress.advanced()  # busy agents are judged by their own heartbeats
            return
        if not self._progress.due() and self._positions:
            return
        try:
            await self._check(sorted(self.assigned))
        except Exception as exc:  # the broker is away or rebalancing: nothing to judge
            log.info("faust_progress_unknown", error=repr(exc))
            self._progress.postpone()

    async def _check(self, tps: list[TP]) -> None:
        consumer = self.app.consumer
        positions = {tp: await consumer.position(tp) for tp in tps}
        now = {tp: offset for tp, offset in positions.items() if offset is not None}
        if now != self._positions:
            self._positions = now
            self._progress.advanced()
            return
        if not self._progress.due():
            return
        ends = await consumer.highwaters(*tps)
        ranges = {tp: (now.get(tp, end), end) for tp, end in ends.items()}
        if self._progress.stalled(now, ranges):
            log.error("faust_consumer_stalled", positions=_named(now), ends=_named(ends))
            self.watchdog.fail("the Kafka consumer stopped fetching")


def _named(offsets: Any) -> dict[str, int]:
    return {f"{tp.topic}/{tp.partition}": offset for tp, offset in dict(offsets).items()}
