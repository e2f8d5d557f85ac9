"""Keeps one service running: restarts it after a crash, with backoff; SIGTERM stops both."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence

MAX_BACKOFF_S = 30.0
STABLE_AFTER_S = 60.0  # a run this long resets the backoff


def supervise(argv: Sequence[str]) -> int:
    stop = threading.Event()
    child: subprocess.Popen[bytes] | None = None

    def forward(signum: int, _frame: object) -> None:
        stop.set()
        if child is not None and child.poll() is None:
            child.send_signal(signum)

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, forward)
    backoff = 1.0
    while True:
        started = time.monotonic()
        child = subprocess.Popen(argv)
        code = child.wait()
        if stop.is_set():
            return 0  # stopped on request: however the child ended, this is a clean stop
        if code == 0:
            return 0
        backoff = 1.0 if time.monotonic() - started > STABLE_AFTER_S else backoff
        print(f"supervise: {argv[-1]} exited with {code}; restarting in {backoff:.0f}s",
              file=sys.stderr, flush=True)  # fmt: skip
        if stop.wait(backoff):
            return 0
        backoff = min(backoff * 2, MAX_BACKOFF_S)


def supervised_argv(argv: Sequence[str]) -> list[str]:
    """`argv` run under a supervisor process (`python -m infra.local.supervise -- argv`)."""
    return [sys.executable, "-m", "infra.local.supervise", "--", *argv]


def main(args: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if args is None else args)
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if not argv:
        print("usage: python -m infra.local.supervise -- PROGRAM [ARG ...]", file=sys.stderr)
        return 2
    return supervise(argv)


if __name__ == "__main__":
    sys.exit(main())
