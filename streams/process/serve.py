"""The one way a Nexus process runs: logging, topics, health, signals, run, graceful stop.

Each process's composition root hands `serve` its name and a `build` function that wires
the process and returns what runs. Resources `build` enters on the exit stack are closed,
in reverse order, after the run ends, however it ends.

Heal or die, never wedge: a run that ends in an error (a fatal Kafka error, a fenced
producer, a crashed Faust worker) ends the process with a non-zero code once its resources
are closed, or after `CLEANUP_GRACE_S` if closing them hangs, so that its supervisor starts a
fresh one. Threads left behind (a transaction stuck on a broker, a Faust consumer thread)
cannot keep it alive. While it runs, its watchdog (streams.process.watchdog) answers
/healthz and /readyz, and ends a process whose loops stopped going round.
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
from streams.kafka.lag import consumer_lag
from streams.kafka.topics import ensure_topics
from streams.process.health import HealthServer
from streams.process.telemetry import start_tracing
from streams.process.watchdog import EXIT_WEDGED, Enforcer, Watchdog, exit_now

log = structlog.get_logger()
EXIT_FAILED = 1
CLEANUP_GRACE_S = 15.0


@dataclass(frozen=True)
class Process:
    """A wired process: ready once it can do its work; `run` returns once `stop` is set.

    `watchdog` holds its heartbeats and readiness conditions; `ready` is one more of them.
    """

    ready: Callable[[], bool]
    run: Callable[[threading.Event], None]
    watchdog: Watchdog | None = None


def watchdog_for(settings: Settings) -> Watchdog:
    """A watchdog with the bounds the settings give (NEXUS_WATCHDOG_S, NEXUS_CATCH_UP_LIMIT_S)."""
    return Watchdog(settings.watchdog_s, catch_up_limit_s=settings.catch_up_limit_s)


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
    resources = ExitStack()
    with resources:
        resources.callback(start_tracing(name, settings.instance_id))  # the last to stop
        process = build(resources)  # bad configuration ends the process here, before ready
        watchdog = process.watchdog or watchdog_for(settings)
        watchdog.require("not ready", process.ready)
        resources.enter_context(consumer_lag(settings, name))  # nexus_consumer_lag_messages
        if health_port is not None:
            health = HealthServer(settings.metrics_host, health_port, watchdog).start()
            resources.callback(health.stop)
        enforcer = Enforcer(watchdog, settings.watchdog_exit_s or None)
        enforcer.start()
        resources.callback(enforcer.stop)
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        log.info("service_started", port=health_port)
        try:
            process.run(stop)
        except SystemExit as exc:  # a Faust worker ends this way, 0 for a clean stop
            if exc.code not in (None, 0):
                _die(resources, watchdog, f"run exited with {exc.code}")
        except Exception as exc:
            log.exception("service_failed")
            _die(resources, watchdog, f"{type(exc).__name__}: {exc}")
        if watchdog.fatal is not None:  # a loop gave up and the run returned: not a clean stop
            _die(resources, watchdog, watchdog.fatal)
    log.info("service_stopped")


def _die(resources: ExitStack, watchdog: Watchdog, reason: str) -> None:
    """Close what can be closed within CLEANUP_GRACE_S, then exit non-zero whatever hangs."""
    watchdog.fail(reason)
    timer = threading.Timer(CLEANUP_GRACE_S, lambda: exit_now(EXIT_WEDGED))
    timer.daemon = True
    timer.start()
    try:
        resources.close()
    except Exception:
        log.exception("cleanup_failed")
    log.error("service_exiting", reason=reason, code=EXIT_FAILED)
    exit_now(EXIT_FAILED)
