"""Health that tells the truth: is each loop of a process still going round, has it hit a
fatal error, is it catching up, and does it hold work it can serve?

A process has one `Watchdog`. Each loop that matters (a consumer's poll loop, a projection
thread, a Faust agent) takes a `Heartbeat` and beats it every time round. Guarantees:
- `liveness()` fails once any heartbeat is older than `bound_s`, once `fail()` recorded a
  fatal error, or once a catch-up has run longer than `catch_up_limit_s`. A loop waiting on
  purpose (standing by for a lock) is excused while inside `heartbeat.waiting()`.
- `readiness()` fails whenever liveness does, while any catch-up is in progress, and while
  any registered serving condition (say, "holds an assignment") is false.
- A fatal error is sticky: nothing clears it but a new process.

`Enforcer` turns a failing watchdog into an exit: a process whose liveness has failed for
`exit_after_s` exits with `EXIT_WEDGED`, without running its cleanup (the hang may be in that
very cleanup), so that its supervisor starts a fresh one. A wedged process never recovers by
itself; a fresh one rebuilds its clients, rejoins its groups and resumes from committed
offsets or checkpoints, which every Nexus process is built to do after a SIGKILL.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import structlog

from streams.process.loop_metrics import LOOPS

log = structlog.get_logger()
Clock = Callable[[], float]
EXIT_WEDGED = 70  # EX_SOFTWARE: the supervisor restarts a process that exits with it


class Heartbeat:
    """One loop's proof of life: `beat()` every time round (every poll)."""

    def __init__(self, name: str, clock: Clock) -> None:
        self.name, self._clock = name, clock
        self._last = clock()
        self._idle = False

    def beat(self) -> None:
        self._last = self._clock()

    def idle(self) -> None:
        """The loop waits on purpose (for work to arrive, for a lock): excused until `busy`."""
        self._idle = True

    def busy(self) -> None:
        """The loop works again, and must beat within the bound from now on."""
        self._idle = False
        self.beat()

    @contextlib.contextmanager
    def waiting(self) -> Iterator[None]:
        """Excused while inside: the loop waits on purpose, it is not stuck."""
        was_idle = self._idle
        self.idle()
        try:
            yield
        finally:
            if not was_idle:
                self.busy()

    def age(self) -> float | None:
        """Seconds since the last beat; None while the loop is excused."""
        return None if self._idle else self._clock() - self._last


@dataclass(frozen=True)
class Verdict:
    """An answer of /healthz or /readyz: ok, or the problems that make it fail."""

    ok: bool
    problems: tuple[str, ...] = ()

    def body(self, ok_status: str, failing_status: str) -> bytes:
        status = ok_status if self.ok else failing_status
        return json.dumps({"status": status, "problems": list(self.problems)}).encode()


class Watchdog:
    """The state /healthz and /readyz report; thread-safe, cheap to ask."""

    def __init__(
        self,
        bound_s: float = 30.0,
        *,
        catch_up_limit_s: float = 600.0,
        clock: Clock = time.monotonic,
    ) -> None:
        self.bound_s, self.catch_up_limit_s, self._clock = bound_s, catch_up_limit_s, clock
        self._lock = threading.Lock()
        self._heartbeats: dict[str, Heartbeat] = {}
        self._catch_ups: dict[int, tuple[str, float]] = {}
        self._conditions: list[tuple[str, Callable[[], bool]]] = []
        self._fatal: str | None = None
        self._keys = itertools.count()
        LOOPS.track(self)  # its heartbeats are on /metrics while it lives

    def heartbeat(self, name: str) -> Heartbeat:
        """The heartbeat of loop `name`, registered now (or the one registered before)."""
        with self._lock:
            if name not in self._heartbeats:
                self._heartbeats[name] = Heartbeat(name, self._clock)
            return self._heartbeats[name]

    def retire(self, heartbeat: Heartbeat) -> None:
        """The loop ended on purpose (a clean stop): it no longer counts."""
        with self._lock:
            if self._heartbeats.get(heartbeat.name) is heartbeat:
                del self._heartbeats[heartbeat.name]

    def require(self, what: str, condition: Callable[[], bool]) -> None:
        """Ready only while `condition()` holds; `what` names the failure ("no assignment")."""
        with self._lock:
            self._conditions.append((what, condition))

    def fail(self, reason: str) -> None:
        """A fatal error: liveness and readiness fail from now on. The first reason stays."""
        with self._lock:
            first = self._fatal is None
            if first:
                self._fatal = reason
        if first:
            log.error("watchdog_fatal", reason=reason)

    @property
    def fatal(self) -> str | None:
        return self._fatal

    @contextlib.contextmanager
    def catching_up(self, what: str) -> Iterator[None]:
        """Not ready while inside; heartbeats are excused, for up to `catch_up_limit_s`."""
        key = next(self._keys)
        with self._lock:
            self._catch_ups[key] = (what, self._clock())
        try:
            yield
        finally:
            with self._lock:
                del self._catch_ups[key]
            for heartbeat in list(self._heartbeats.values()):
                heartbeat.beat()  # the loops were blocked by the catch-up, not stuck

    def liveness(self) -> Verdict:
        now = self._clock()
        with self._lock:
            problems = [f"fatal: {self._fatal}"] if self._fatal else []
            catch_ups = list(self._catch_ups.values())
            heartbeats = list(self._heartbeats.values())
        for what, since in catch_ups:
            if now - since > self.catch_up_limit_s:
                problems.append(f"catch-up {what} running {now - since:.0f}s")
        if not catch_ups:
            for heartbeat in heartbeats:
                age = heartbeat.age()
                if age is not None and age > self.bound_s:
                    problems.append(f"{heartbeat.name} has not polled for {age:.0f}s")
        return Verdict(not problems, tuple(problems))

    def heartbeat_ages(self) -> dict[str, float]:
        """Each loop's seconds since its last beat, as `liveness` judges them: 0 while the
        loop is excused (waiting on purpose, or any catch-up running)."""
        with self._lock:
            catching_up = bool(self._catch_ups)
            heartbeats = list(self._heartbeats.values())
        ages = {}
        for heartbeat in heartbeats:
            age = heartbeat.age()
            ages[heartbeat.name] = 0.0 if catching_up or age is None else max(0.0, age)
        return ages

    def readiness(self) -> Verdict:
        problems = list(self.liveness().problems)
        with self._lock:
            problems.extend(f"catching up: {what}" for what, _ in self._catch_ups.values())
            conditions = list(self._conditions)
        problems.extend(what for what, condition in conditions if not condition())
        return Verdict(not problems, tuple(problems))


class Enforcer(threading.Thread):
    """Exits the process once its watchdog's liveness has failed for `exit_after_s`, or
    `fatal_grace_s` after a fatal error (which the process should have exited on by then).

    `exit_after_s` None: a stalled process only reports. The exit skips cleanup and
    finally-blocks on purpose: they may be what hangs.
    """

    def __init__(
        self,
        watchdog: Watchdog,
        exit_after_s: float | None,
        *,
        fatal_grace_s: float = 20.0,
        every_s: float = 1.0,
        clock: Clock = time.monotonic,
        exit: Callable[[int], None] = os._exit,
    ) -> None:
        super().__init__(name="watchdog", daemon=True)
        self.watchdog, self.exit_after_s, self.fatal_grace_s = watchdog, exit_after_s, fatal_grace_s
        self.every_s, self._clock, self._exit = every_s, clock, exit
        self._failing_since: float | None = None
        self._fatal_since: float | None = None
        self._stop = threading.Event()

    def check(self) -> bool:
        """One look; True when it exited (or would have, with a test's `exit`)."""
        verdict = self.watchdog.liveness()
        now = self._clock()
        if verdict.ok:
            self._failing_since = None
            return False
        if self._failing_since is None:
            self._failing_since = now
            log.warning("watchdog_failing", problems=list(verdict.problems))
        if self.watchdog.fatal is not None and self._fatal_since is None:
            self._fatal_since = now
        if not self._due(now):
            return False
        log.error("watchdog_exit", problems=list(verdict.problems), code=EXIT_WEDGED)
        exit_now(EXIT_WEDGED, self._exit)
        return True

    def _due(self, now: float) -> bool:
        if self._fatal_since is not None and now - self._fatal_since >= self.fatal_grace_s:
            return True
        failing_for = now - (self._failing_since or now)
        return self.exit_after_s is not None and failing_for >= self.exit_after_s

    def run(self) -> None:
        while not self._stop.wait(self.every_s):
            if self.check():
                return

    def stop(self) -> None:
        self._stop.set()


def exit_now(code: int, exit: Callable[[int], None] = os._exit) -> None:
    """End the process at once with `code`, after flushing what it logged."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed or broken pipe
            stream.flush()
    exit(code)
