"""Runs a program tethered to its parent: when the parent dies, however it dies, the program is
sent a signal (Linux's parent-death signal), so a SIGKILLed supervisor leaves no orphan behind.

    python -S infra/local/tether.py --parent PID --signal SIGTERM [--user NAME] -- PROGRAM [ARG ...]

It switches to the OS user NAME if given, arms the signal, and execs PROGRAM in its own place:
the program keeps this process's pid. Guarantees:
- If the parent PID is already gone when the signal is armed, PROGRAM never starts (exit 1).
- The signal survives the exec (PROGRAM is not set-user-ID), and is armed after the user switch,
  which would clear it.

It is a program of its own rather than a `preexec_fn`: Python code run between fork and exec
may deadlock in a process with threads. It imports only the standard library, so it runs with
`python -S` (no site, no venv packages) and costs little more than an interpreter start.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import pwd
import signal
import sys
from collections.abc import Sequence

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def arm_parent_death_signal(parent: int, sig: signal.Signals) -> None:
    """Ask the kernel for `sig` when our parent exits; exit if `parent` is already gone."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"prctl(PR_SET_PDEATHSIG): {os.strerror(error)}")
    if os.getppid() != parent:  # it died before the signal was armed: nobody would send it
        sys.exit(1)


def become(user: str) -> None:
    """Drop to `user` (and its groups), with the HOME, USER and LOGNAME it would have."""
    entry = pwd.getpwnam(user)
    os.setgid(entry.pw_gid)
    os.initgroups(user, entry.pw_gid)
    os.setuid(entry.pw_uid)
    os.environ.update(HOME=entry.pw_dir, USER=user, LOGNAME=user)


def main(args: Sequence[str]) -> None:
    parser = argparse.ArgumentParser(prog="tether")
    parser.add_argument("--parent", type=int, required=True)
    parser.add_argument("--signal", type=lambda name: signal.Signals[name], required=True)
    parser.add_argument("--user")
    parser.add_argument("program", nargs="+")
    options = parser.parse_args(args)
    if options.user:
        become(options.user)  # first: the kernel clears the parent-death signal on a user change
    arm_parent_death_signal(options.parent, options.signal)
    try:
        os.execvp(options.program[0], options.program)
    except OSError as error:
        print(f"tether: cannot run {options.program[0]}: {error}", file=sys.stderr, flush=True)
        sys.exit(127)


if __name__ == "__main__":
    main(sys.argv[1:])
