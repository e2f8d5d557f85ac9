"""The projector process: one ProjectionRunner thread per projection, plus health and metrics.

`Projector` is what tests start and stop; `run` is the process's composition root.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from contextlib import ExitStack
from datetime import datetime
from types import TracebackType

import psycopg
import structlog

from infra.config.clock import utcnow
from infra.config.settings import Settings
from projections.catalog import PROJECTOR_PROJECTIONS, projection
from projections.migrations import migrate
from projections.runner import ProjectionRunner
from schemas.codec import AvroCodec
from streams.process.serve import Process, serve, watchdog_for
from streams.process.watchdog import Watchdog

log = structlog.get_logger()


class Projector:
    """Keeps the live version of every named projection up to date, one thread each."""

    def __init__(
        self,
        settings: Settings,
        *,
        projections: Iterable[str] = PROJECTOR_PROJECTIONS,
        codec: AvroCodec | None = None,
        now: Callable[[], datetime] = utcnow,
        batch_size: int = 2000,
        watchdog: Watchdog | None = None,
    ) -> None:
        self.settings = settings
        self.watchdog = watchdog or watchdog_for(settings)  # every runner's heartbeat
        self.names = tuple(projections)
        self.codec, self.now, self.batch_size = codec or AvroCodec(), now, batch_size
        self.runners: list[ProjectionRunner] = []

    def start(self) -> Projector:
        """Migrate (idempotent), then start a runner per projection."""
        migrate(self.settings.resolved_database_url)
        self.runners = [
            ProjectionRunner(
                self.settings,
                projection(name),
                codec=self.codec,
                now=self.now,
                batch_size=self.batch_size,
                watchdog=self.watchdog,
            )
            for name in self.names
        ]
        for runner in self.runners:
            # /readyz names a projection held up by a poison event until it is dead-lettered
            self.watchdog.require(f"projection {runner.projection.name} retrying", _past(runner))
            runner.start()
        return self

    def stop(self, timeout: float = 15.0) -> None:
        for runner in self.runners:
            runner.stop()
        for runner in self.runners:
            runner.join(timeout)

    def assigned(self) -> bool:
        """Each projection is kept here (assigned) or by another instance (this one's runner
        stands by, projections/keeper.py), and at least one is kept here."""
        kept = [r.ready.is_set() and not r.standby.is_set() for r in self.runners]
        waiting = [r.standby.is_set() for r in self.runners]
        return any(kept) and all(k or w for k, w in zip(kept, waiting, strict=True))

    def ready(self) -> bool:
        """Some projections are assigned here, the rest kept by other instances, and
        PostgreSQL answers: an instance standing by for every projection is not ready."""
        return self.assigned() and _postgres_answers(self.settings.resolved_database_url)

    def wait_assigned(self, timeout: float = 30.0) -> bool:
        return all(r.ready.wait(timeout) for r in self.runners)

    def __enter__(self) -> Projector:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _past(runner: ProjectionRunner) -> Callable[[], bool]:
    """Whether `runner` is past its failing events (tried, or dead-lettered)."""
    return lambda: not runner.retrying()


def _postgres_answers(database_url: str) -> bool:
    try:
        with psycopg.connect(database_url, connect_timeout=2) as conn:
            conn.execute("SELECT 1")
        return True
    except psycopg.Error:
        return False


def run(settings: Settings) -> None:
    """Composition root of the projector process; SIGTERM or SIGINT stop it cleanly."""

    def build(resources: ExitStack) -> Process:
        projector = resources.enter_context(Projector(settings))  # started on entry
        log.info("projections", names=list(projector.names))
        return Process(projector.ready, _wait_for_stop, projector.watchdog)

    serve("projector", settings, build, health_port=settings.projector_health_port)


def _wait_for_stop(stop: threading.Event) -> None:
    stop.wait()  # the runner threads do the work
