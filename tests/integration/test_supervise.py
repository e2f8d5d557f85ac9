"""The supervisor (`python -m infra.local.supervise`) and the tether it runs programs through.

Every supervisor here is a real process, and so is its program, which reports to files.
"""

from __future__ import annotations

import os
import pwd
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from infra.local.processes import command_line, is_alive
from infra.local.supervise import TETHER, supervised_argv, supervised_child

# One line per run in argv[1]; the first run crashes, the second ends cleanly, later runs
# wait and write the signal that stops them to argv[2].
PROGRAM = """
import os, pathlib, signal, sys, time
runs, stopped = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
with runs.open("a") as file:
    file.write(f"{os.getpid()} {os.getuid()}\\n")
count = len(runs.read_text().splitlines())
if count <= 2:
    sys.exit(1 if count == 1 else 0)
def record(signum, _frame):
    stopped.write_text(signal.Signals(signum).name)
    sys.exit(0)
for sig in (signal.SIGTERM, signal.SIGINT):
    signal.signal(sig, record)
while True:
    time.sleep(1)
"""


def wait_until(condition: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what} after {timeout}s"
        time.sleep(0.05)


@contextmanager
def supervisor(argv: list[str]) -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield process
    finally:
        process.kill()  # its program goes too: that much is under test here
        process.wait(10)


def runs(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def test_a_program_that_ends_is_started_again_until_the_supervisor_is_stopped(
    tmp_path: Path,
) -> None:
    log, stopped = tmp_path / "runs", tmp_path / "stopped"
    argv = supervised_argv([sys.executable, "-c", PROGRAM, str(log), str(stopped)])
    with supervisor(argv) as process:
        # A crash (exit 1) and a clean exit (0) are both followed by a restart.
        wait_until(lambda: len(runs(log)) == 3, 20, "no third run")
        third = int(runs(log)[2].split()[0])
        wait_until(lambda: supervised_child(process.pid) == third, 10, "third run not a child")

        process.send_signal(signal.SIGTERM)

        assert process.wait(20) == 0
    assert stopped.read_text() == "SIGTERM"
    assert len(runs(log)) == 3
    assert not is_alive(third)


@pytest.mark.fault
@pytest.mark.timeout(90)  # its waits: 20 s + 5 s
def test_a_sigkilled_supervisor_takes_its_program_with_it(tmp_path: Path) -> None:
    log, stopped = tmp_path / "runs", tmp_path / "stopped"
    program = [sys.executable, "-c", PROGRAM, str(log), str(stopped)]
    log.write_text("0 0\n0 0\n")  # past the runs that end by themselves
    argv = supervised_argv(program, stop_signal=signal.SIGINT)
    with supervisor(argv) as process:
        wait_until(lambda: len(runs(log)) == 3, 20, "program never started")
        child = int(runs(log)[2].split()[0])
        assert supervised_child(process.pid) == child

        process.kill()  # SIGKILL: the supervisor cannot pass anything on

        wait_until(lambda: not is_alive(child), 5, "program outlived its supervisor")
    assert stopped.read_text() == "SIGINT"  # the kernel's parent-death signal, as asked


@pytest.mark.fault
@pytest.mark.timeout(90)  # its waits: 20 s + 5 s
def test_a_program_run_as_another_user_still_dies_with_its_supervisor() -> None:
    # The kernel clears the parent-death signal when a process changes user: the tether
    # must arm it after switching (PostgreSQL runs this way under root).
    with supervisor(supervised_argv(["sleep", "60"], user="nobody")) as process:
        wait_until(lambda: command_line(supervised_child(process.pid) or 0)[:1] == ["sleep"],
                   20, "program never started")  # fmt: skip
        child = supervised_child(process.pid)
        assert child is not None
        assert _uid(child) == pwd.getpwnam("nobody").pw_uid != os.getuid()

        process.kill()

        wait_until(lambda: not is_alive(child), 5, "program outlived its supervisor")


def _uid(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1])


@pytest.mark.fault
@pytest.mark.timeout(90)  # its waits: 20 s + 20 s
def test_killing_the_program_gets_it_restarted_with_a_new_pid(tmp_path: Path) -> None:
    log, stopped = tmp_path / "runs", tmp_path / "stopped"
    log.write_text("0 0\n0 0\n")
    argv = supervised_argv([sys.executable, "-c", PROGRAM, str(log), str(stopped)])
    with supervisor(argv) as process:
        wait_until(lambda: len(runs(log)) == 3, 20, "program never started")
        first = int(runs(log)[2].split()[0])

        os.kill(first, signal.SIGKILL)

        wait_until(lambda: len(runs(log)) == 4, 20, "program not restarted")
        second = int(runs(log)[3].split()[0])
        assert supervised_child(process.pid) == second != first


def test_the_tether_refuses_to_start_a_program_whose_parent_is_gone(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    program = [sys.executable, "-c", f"open({str(marker)!r}, 'w').close()"]
    gone = subprocess.Popen(["true"])
    gone.wait()

    assert subprocess.run(_tethered(gone.pid, program)).returncode == 1
    assert not marker.exists()
    assert subprocess.run(_tethered(os.getpid(), program)).returncode == 0
    assert marker.exists()


def _tethered(parent: int, program: list[str]) -> list[str]:
    tether = [sys.executable, "-S", str(TETHER), "--parent", str(parent), "--signal", "SIGTERM"]
    return [*tether, "--", *program]
