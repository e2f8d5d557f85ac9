"""`python -m bench [NAME ...]`: run the benchmarks, print the table, write the JSON.

Kafka and PostgreSQL are started once for the whole run; each benchmark starts the Nexus
processes it needs. A benchmark that crashes is reported as ERROR and the others still run.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import (
    analytics,
    authorization,
    http_accept,
    latency,
    notify,
    publish,
    replay_rate,
    scaling,
    takeover,
)
from bench.environment import BenchEnvironment
from bench.report import Outcome, notes, say, table, write_json
from infra.config.settings import PROJECT_ROOT

RESULTS = Path(__file__).resolve().parent / "results"
BENCHMARKS: dict[str, Callable[[BenchEnvironment], Outcome]] = {
    http_accept.NAME: http_accept.run,
    authorization.NAME: authorization.run,
    publish.NAME: publish.run,
    latency.NAME: latency.run,
    replay_rate.NAME: replay_rate.run,
    notify.NAME: notify.run,
    analytics.NAME: analytics.run,
    takeover.NAME: takeover.run,
    scaling.NAME: scaling.run,
}


def run_one(name: str, env: BenchEnvironment) -> Outcome:
    say(f"{name}: running")
    started = time.perf_counter()
    try:
        outcome = BENCHMARKS[name](env)
    except Exception as exc:  # one broken benchmark must not hide the others' figures
        traceback.print_exc()
        outcome = Outcome(name, error=f"{type(exc).__name__}: {exc}"[:500])
    outcome.seconds = time.perf_counter() - started
    say(f"{name}: done in {outcome.seconds:.0f} s")
    return outcome


def run_info(names: list[str], started: datetime, seconds: float) -> dict[str, Any]:
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True
    ).stdout.strip()
    return {
        "started_at": started.isoformat(),
        "seconds": round(seconds, 1),
        "benchmarks": names,
        "commit": commit,
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
        "python": platform.python_version(),
        "machine": platform.platform(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "names", nargs="*", metavar="NAME",
        help=f"benchmarks to run, in this order (default: all of {', '.join(BENCHMARKS)})",
    )  # fmt: skip
    names = parser.parse_args(argv).names or list(BENCHMARKS)
    if unknown := [name for name in names if name not in BENCHMARKS]:
        parser.error(f"unknown benchmark {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
    started_at, started = datetime.now(UTC), time.perf_counter()
    shutil.rmtree(RESULTS / "logs", ignore_errors=True)
    say("starting Kafka and PostgreSQL")
    with BenchEnvironment(RESULTS / "logs") as env:
        outcomes = [run_one(name, env) for name in names]
    seconds = time.perf_counter() - started
    info = run_info(names, started_at, seconds)
    write_json(RESULTS / "latest.json", outcomes, info)
    if names == list(BENCHMARKS):  # a full run is kept in git, one file per run
        write_json(RESULTS / f"{started_at:%Y-%m-%d}-{info['commit']}.json", outcomes, info)
    print(table(outcomes))
    print()
    print(notes(outcomes))
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"\ntotal {seconds:.0f} s on {os.cpu_count()} CPUs, load average now {load}")
    print(f"JSON in {RESULTS}, logs in {RESULTS / 'logs'}")
    return 1 if any(o.error for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
