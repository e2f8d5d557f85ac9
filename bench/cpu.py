"""CPU used by named processes over a stretch of a benchmark, from /proc/<pid>/stat.

On a two-core machine that runs the broker, the database and the services at once, a
throughput figure means little without knowing which process was saturated.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds of all threads of `pid` so far (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime and stime: fields 14 and 15


class CpuMeter:
    """Share of one core each process used between `start()` and `shares()`."""

    def __init__(self, pids: dict[str, int | None]) -> None:
        self.pids = {name: pid for name, pid in pids.items() if pid is not None}
        self._start: dict[str, float] = {}
        self._started = 0.0

    def start(self) -> CpuMeter:
        self._start = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        self._started = time.monotonic()
        return self

    def shares(self) -> dict[str, float]:
        elapsed = time.monotonic() - self._started
        return {
            name: (cpu_seconds(pid) - self._start[name]) / elapsed
            for name, pid in self.pids.items()
        }


def describe(shares: dict[str, float]) -> str:
    return ", ".join(f"{name} {share:.0%}" for name, share in shares.items())
