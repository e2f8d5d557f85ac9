"""A child process its starter owns for a while (a test, a benchmark), and HTTP readiness.

The child runs in its own session with its output appended to a log file; it is ready once
its probe URL answers 200. `nexus up` runs services detached instead (infra.local.processes), but
waits for them with the same `wait_for_probe`.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import httpx

from infra.local.processes import ProcessError

POLL_S = 0.1
STOP_TIMEOUT_S = 20.0


def answers(url: str, timeout: float = 1.0) -> bool:
    """True when `url` answers 200 within `timeout`."""
    try:
        return httpx.get(url, timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


def wait_for_probe(
    url: str, alive: Callable[[], bool], timeout: float, failure: Callable[[str], str]
) -> None:
    """Poll `url` until it answers 200; ProcessError(failure(what)) if the process exits
    (`alive` turns false) or the timeout passes first."""
    deadline = time.monotonic() + timeout
    while True:
        if not alive():
            raise ProcessError(failure("exited"))
        if answers(url):
            return
        if time.monotonic() > deadline:
            raise ProcessError(failure(f"not ready after {timeout:.0f}s"))
        time.sleep(POLL_S)


class ChildProcess:
    """One child in its own session, output appended to `log_path`; ready when `probe` is 200."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        port: int,
        log_path: Path,
        env: Mapping[str, str],
        cwd: Path | None = None,
    ) -> None:
        self.name, self.argv, self.port, self.log_path = name, list(argv), port, log_path
        self.env, self.cwd = dict(env), cwd
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None, f"{self.name} was never started"
        return self.process.pid

    def start(self, timeout: float = 90.0, probe: str = "/readyz") -> ChildProcess:
        self.starts += 1
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:  # the child keeps its own copy of the fd
            self.process = subprocess.Popen(
                self.argv, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True, cwd=self.cwd,
            )  # fmt: skip
        self.wait_ready(timeout, probe)
        return self

    def wait_ready(self, timeout: float, probe: str = "/readyz") -> None:
        wait_for_probe(self.url + probe, self.alive, timeout, self._failure)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: no flush, no commit, no goodbye."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it has not exited after STOP_TIMEOUT_S."""
        if not self.alive():
            return
        assert self.process is not None
        self.process.terminate()
        try:
            self.process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)

    def _failure(self, what: str) -> str:
        tail = self.log_path.read_text(errors="replace")[-3000:]
        return f"{self.name} {what}; {self.log_path}:\n{tail}"
