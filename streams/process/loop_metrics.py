"""Every watched loop's heartbeat on /metrics, read from the live watchdogs when scraped.

- `nexus_loop_heartbeat_age_seconds{loop}`: seconds since the loop last went round, 0 while
  it is excused (waiting on purpose for work or a lock, or during a catch-up);
- `nexus_loop_heartbeat_bound_seconds{loop}`: the age past which /healthz fails
  (NEXUS_WATCHDOG_S).

An age above its bound is a loop that stopped polling (alert `NexusLoopStalled`). A process
that exits on it (NEXUS_WATCHDOG_EXIT_S) shows it for a scrape or two before it is restarted;
one that only reports (NEXUS_WATCHDOG_EXIT_S=0) shows it until an operator acts.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterable
from typing import Protocol

from prometheus_client import REGISTRY
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

AGE = "nexus_loop_heartbeat_age_seconds"
BOUND = "nexus_loop_heartbeat_bound_seconds"


class Watched(Protocol):
    """What a watchdog shows of its loops (streams.process.watchdog.Watchdog)."""

    bound_s: float

    def heartbeat_ages(self) -> dict[str, float]: ...


class LoopHeartbeats(Collector):
    """Collects from every watchdog alive in this process (weakly held: a test's watchdog
    goes when the test drops it). A loop named by two watchdogs shows its larger age."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._watched: weakref.WeakSet[Watched] = weakref.WeakSet()

    def track(self, watchdog: Watched) -> None:
        with self._lock:
            self._watched.add(watchdog)

    def describe(self) -> Iterable[GaugeMetricFamily]:
        return self._families({})

    def collect(self) -> Iterable[GaugeMetricFamily]:
        with self._lock:
            watched = list(self._watched)
        loops: dict[str, tuple[float, float]] = {}
        for watchdog in watched:
            for name, age in watchdog.heartbeat_ages().items():
                if name not in loops or age > loops[name][0]:
                    loops[name] = (age, watchdog.bound_s)
        return self._families(loops)

    @staticmethod
    def _families(loops: dict[str, tuple[float, float]]) -> list[GaugeMetricFamily]:
        age = GaugeMetricFamily(AGE, "Seconds since the loop last went round", labels=["loop"])
        bound = GaugeMetricFamily(
            BOUND, "Heartbeat age past which the process fails /healthz", labels=["loop"]
        )
        for name, (seconds, bound_s) in sorted(loops.items()):
            age.add_metric([name], seconds)
            bound.add_metric([name], bound_s)
        return [age, bound]


LOOPS = LoopHeartbeats()
REGISTRY.register(LOOPS)
