"""Keeps one program running: starts it again whenever it ends, until the supervisor is stopped.

Guarantees:
- The program is tethered to its supervisor (infra.local.tether): when the supervisor dies,
  even by SIGKILL, the kernel sends the program `stop_signal`. No orphan keeps a service's
  port or partitions while `nexus status` calls it down.
- SIGTERM or SIGINT to the supervisor sends `stop_signal` to the program, waits for it to end
  and exits 0. No restart follows a stop request, even one that arrives while it starts.
- Any other end of the program is followed by a restart: a crash, a kill by an operator, and
  exit 0 too (a service never ends by itself), after a backoff doubling from 1 s to 30 s that
  starts over once a run lasted 60 s.
- The program keeps the pid the supervisor forked (the tether execs it in place) and the
  supervisor's process group, so signalling the group reaches both.

The supervisor runs as `nexus run SERVICE --supervise` or `python -m infra.local.supervise --
PROGRAM ...` (`supervised_argv`); `supervised_child` finds the program of a running one.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from infra.local.processes import children_of, command_line

MAX_BACKOFF_S = 30.0
STABLE_AFTER_S = 60.0  # a run this long resets the backoff
TETHER = Path(__file__).with_name("tether.py")
MODULE = "infra.local.supervise"


def supervise(
    argv: Sequence[str], *, stop_signal: signal.Signals = signal.SIGTERM, user: str | None = None
) -> int:
    """Run `argv` (as OS user `user`, if given) until SIGTERM or SIGINT; returns 0.

    Installs signal handlers: call it from a process of its own, as its main thread."""
    stopping = threading.Event()
    child: subprocess.Popen[bytes] | None = None

    def request_stop(_signum: int, _frame: object) -> None:
        stopping.set()
        if child is not None and child.poll() is None:
            child.send_signal(stop_signal)

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, request_stop)
    backoff = 1.0
    while not stopping.is_set():
        started = time.monotonic()
        child = subprocess.Popen(tethered(argv, stop_signal, user))
        if stopping.is_set():  # the request came while it was forked: it may have missed it
            child.send_signal(stop_signal)
        code = child.wait()
        if stopping.is_set():
            break
        backoff = 1.0 if time.monotonic() - started > STABLE_AFTER_S else backoff
        print(f"supervise: {_describe(argv)} exited with {code}; restarting in {backoff:.0f}s",
              file=sys.stderr, flush=True)  # fmt: skip
        if stopping.wait(backoff):
            break
        backoff = min(backoff * 2, MAX_BACKOFF_S)
    return 0


def _describe(argv: Sequence[str]) -> str:
    """The program and its last argument: `nexus … projector`, `postgres … /data/dir`."""
    return Path(argv[0]).name + (f" … {argv[-1]}" if len(argv) > 1 else "")


def tethered(
    argv: Sequence[str], stop_signal: signal.Signals, user: str | None = None
) -> list[str]:
    """`argv` run through the tether, which dies with (the thread of) this process."""
    as_user = ["--user", user] if user else []
    return [
        sys.executable, "-S", str(TETHER), "--parent", str(os.getpid()),
        "--signal", stop_signal.name, *as_user, "--", *argv,
    ]  # fmt: skip


def supervised_argv(
    argv: Sequence[str],
    *,
    stop_signal: signal.Signals = signal.SIGTERM,
    user: str | None = None,
) -> list[str]:
    """`argv` run under a supervisor process (`python -m infra.local.supervise -- argv`);
    `stop_signal` is what the program gets to stop (PostgreSQL: SIGINT, a fast shutdown)."""
    options = [] if stop_signal == signal.SIGTERM else ["--stop-signal", stop_signal.name]
    options += ["--user", user] if user else []
    return [sys.executable, "-m", MODULE, *options, "--", *argv]


def is_supervisor(pid: int) -> bool:
    """True when `pid` runs this module, either way it is started."""
    line = command_line(pid)
    return MODULE in line or (line[-1:] == ["--supervise"] and "run" in line)


def supervised_child(pid: int) -> int | None:
    """The supervised program's pid when `pid` is a supervisor (None between a crash and its
    restart), else `pid` itself."""
    if not is_supervisor(pid):
        return pid
    return next(iter(children_of(pid)), None)


def main(args: Sequence[str] | None = None) -> int:
    options, program = _split(list(sys.argv[1:] if args is None else args))
    parser = argparse.ArgumentParser(
        prog="python -m infra.local.supervise",
        usage="%(prog)s [--stop-signal SIGNAL] [--user NAME] -- PROGRAM [ARG ...]",
    )
    parser.add_argument("--stop-signal", type=lambda name: signal.Signals[name], default="SIGTERM")
    parser.add_argument("--user")
    parsed = parser.parse_args(options)
    if not program:
        parser.print_usage(sys.stderr)
        return 2
    return supervise(program, stop_signal=parsed.stop_signal, user=parsed.user)


def _split(argv: list[str]) -> tuple[list[str], list[str]]:
    """(options, program): the program follows the first `--`, or is all of argv without one."""
    if "--" not in argv:
        return [], argv
    at = argv.index("--")
    return argv[:at], argv[at + 1 :]


if __name__ == "__main__":
    sys.exit(main())
