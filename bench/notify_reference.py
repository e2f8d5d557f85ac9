"""The notification benchmark's reference: apprise's json:// called directly in a loop.

No saga, no log, no ledger: one `apprise.Apprise()` per thread notifying the same local
sink as the notifier does, so the ratio shows what the saga machinery costs. The bench
imports apprise only here, as the reference it measures against (bench/bare_app.py is the
HTTP benchmark's reference in the same way).
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import apprise

from bench.cpu import cpu_seconds
from bench.webhook_sink import SinkReceipts

TITLE = "welcome"
BODY = "Welcome to Nexus, Ada!"  # what the welcome template's webhook JSON carries


@dataclass(frozen=True)
class ReferenceRun:
    threads: int
    sends: int
    failures: int
    seconds: float
    cpu_seconds: float  # of the bench process, which does nothing else meanwhile
    send_ms: list[float]  # each notify() call, in milliseconds
    received: int  # requests the sink logged for this run

    @property
    def rate(self) -> float:
        return self.sends / self.seconds

    @property
    def cpu_ms_per_send(self) -> float:
        return self.cpu_seconds / self.sends * 1000


def notify_loop(url: str, count: int) -> tuple[list[float], int]:
    """(milliseconds per notify(), failures) of `count` sends in a plain loop."""
    notifier = apprise.Apprise()
    if not notifier.add(url):
        raise RuntimeError(f"apprise rejected {url}")
    durations, failures = [], 0
    for _ in range(count):
        started = time.perf_counter()
        failures += not notifier.notify(body=BODY, title=TITLE)
        durations.append((time.perf_counter() - started) * 1000)
    return durations, failures


def apprise_run(sink: SinkReceipts, port: int, count: int, threads: int) -> ReferenceRun:
    """`count` notifications over `threads` threads, each looping on its own Apprise."""
    path = f"/apprise-{threads}-threads"
    url = f"json://127.0.0.1:{port}{path}"
    per_thread = count // threads
    cpu, started = cpu_seconds(os.getpid()), time.perf_counter()
    if threads == 1:
        loops = [notify_loop(url, count)]
    else:
        with ThreadPoolExecutor(threads, thread_name_prefix="apprise") as pool:
            loops = list(pool.map(lambda _: notify_loop(url, per_thread), range(threads)))
    seconds = time.perf_counter() - started
    cpu = cpu_seconds(os.getpid()) - cpu
    received = sum(1 for r in sink.fetch() if r.path == path)
    return ReferenceRun(
        threads, per_thread * threads, sum(f for _, f in loops), seconds, cpu,
        [ms for durations, _ in loops for ms in durations], received,
    )  # fmt: skip
