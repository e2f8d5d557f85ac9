"""The one way a Nexus process runs: logging, topics, health, signals, run, graceful stop.

Each process's composition root hands `serve` its name and a `build` function that wires
the process and returns what runs. Resources `build` enters on the exit stack are closed,
in reverse order, after the run ends, however it ends.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass

import structlog

from infra.config.logging import configure_logging
from infra.config.settings import Settings
from streams.kafka.topics import ensure_topics
from streams.process.health import HealthServer

log = structlog.get_logger()
HEALTH_HOST = "127.0.0.1"


@dataclass(frozen=True)
class Process:
    """A wired process: ready once it can do its work; `run` returns once `stop` is set."""

    ready: Callable[[], bool]
    run: Callable[[threading.Event], None]


def serve(
    name: str,
    settings: Settings,
    build: Callable[[ExitStack], Process],
    *,
    health_port: int | None,
    creates_topics: bool = True,
) -> None:
    """Run the process `build` wires; `health_port` None: it answers /readyz itself."""
    configure_logging(settings.log_level, name)
    if creates_topics:
        ensure_topics(settings)
    stop = threading.Event()
    with ExitStack() as resources:
        process = build(resources)  # bad configuration ends the process here, before ready
        if health_port is not None:
            health = HealthServer(HEALTH_HOST, health_port, process.ready).start()
            resources.callback(health.stop)
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        log.info("service_started", port=health_port)
        process.run(stop)
    log.info("service_stopped")
