"""FaustWatch: the watchdog's eyes inside a Faust app, driven with a stand-in app."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from faust.types import TP

from streams.process.faust_worker import FaustWatch
from streams.process.watchdog import Watchdog

EVENTS = [TP("events", 0), TP("events", 1)]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Signal:
    def __init__(self) -> None:
        self.receivers: list[Callable[..., Any]] = []

    def connect(self, receiver: Callable[..., Any]) -> None:
        self.receivers.append(receiver)


class Consumer:
    def __init__(self) -> None:
        self.positions = {tp: 10 for tp in EVENTS}
        self.ends = {tp: 10 for tp in EVENTS}

    async def position(self, tp: TP) -> int:
        return self.positions[tp]

    async def highwaters(self, *tps: TP) -> dict[TP, int]:
        return {tp: self.ends[tp] for tp in tps}


class App:
    """What FaustWatch uses of a faust.App: a timer, the assignment signal, the consumer."""

    def __init__(self) -> None:
        self.ticks: list[Callable[[], Any]] = []
        self.on_partitions_assigned = Signal()
        self.consumer = Consumer()

    def timer(self, interval: float) -> Callable[[Callable[[], Any]], Callable[[], Any]]:
        def register(tick: Callable[[], Any]) -> Callable[[], Any]:
            self.ticks.append(tick)
            return tick

        return register

    def tick(self) -> None:
        for tick in self.ticks:
            asyncio.run(tick())

    def assign(self, tps: list[TP]) -> None:
        for receiver in self.on_partitions_assigned.receivers:
            asyncio.run(receiver(self, set(tps)))


@pytest.fixture
def clock() -> Clock:
    return Clock()


def watched(clock: Clock) -> tuple[App, Watchdog, FaustWatch]:
    app, watchdog = App(), Watchdog(30, clock=clock)
    return app, watchdog, FaustWatch(app, watchdog, ["events"], clock)  # type: ignore[arg-type]


def test_ready_only_while_it_holds_partitions_of_every_topic(clock: Clock) -> None:
    app, watchdog, _ = watched(clock)
    assert watchdog.readiness().problems == ("no partitions of every topic assigned",)
    app.assign(EVENTS)
    assert watchdog.readiness().ok
    app.assign([])
    assert not watchdog.readiness().ok


def test_the_timer_beats_the_event_loop_heartbeat(clock: Clock) -> None:
    app, watchdog, _ = watched(clock)
    clock.now += 31
    assert not watchdog.liveness().ok
    app.tick()
    assert watchdog.liveness().ok


def test_a_consumer_whose_positions_stay_behind_the_ends_is_fatal(clock: Clock) -> None:
    app, watchdog, _ = watched(clock)
    app.assign(EVENTS)
    app.tick()  # the first positions
    app.consumer.ends[EVENTS[1]] = 50  # messages wait, and nothing moves
    clock.now += 29
    app.tick()
    assert watchdog.fatal is None
    clock.now += 1
    app.tick()
    assert watchdog.fatal == "the Kafka consumer stopped fetching"


def test_moving_positions_or_a_busy_agent_are_not_a_stall(clock: Clock) -> None:
    app, watchdog, watch = watched(clock)
    agent = watch.agent("workflows")
    app.assign(EVENTS)
    app.tick()
    app.consumer.ends[EVENTS[0]] = 50
    for offset in (20, 30, 40):
        clock.now += 30
        app.consumer.positions[EVENTS[0]] = offset
        app.tick()
    agent.busy()  # positions stay while the agent works through what it fetched
    clock.now += 60
    app.tick()
    agent.beat()
    assert watchdog.fatal is None and watchdog.liveness().ok
    agent.idle()
    clock.now += 30
    app.tick()
    clock.now += 30
    app.tick()
    assert watchdog.fatal == "the Kafka consumer stopped fetching"


def test_an_agent_stuck_in_a_batch_fails_liveness(clock: Clock) -> None:
    app, watchdog, watch = watched(clock)
    agent = watch.agent("analytics")
    clock.now += 100
    app.tick()
    assert watchdog.liveness().ok  # idle: waiting for messages is fine
    agent.busy()
    clock.now += 31
    app.tick()
    assert watchdog.liveness().problems == ("agent analytics has not polled for 31s",)
