"""Composition root of the notifier process: wires the real adapters into the worker."""

from __future__ import annotations

import random
from collections.abc import Callable
from contextlib import ExitStack
from datetime import datetime

import structlog
from confluent_kafka import Message
from psycopg_pool import ConnectionPool

from infra.config.clock import utcnow
from infra.config.delivery import delivery_config
from infra.config.settings import Settings
from sagas.adapters.apprise_notifier import AppriseNotifier
from sagas.adapters.port import Notifier
from sagas.adapters.postgres_ledger import PostgresLedger, ensure_ledger
from sagas.adapters.postgres_notifications import PostgresNotificationIndex
from sagas.adapters.postgres_recipients import PostgresRecipients
from sagas.circuit.breaker import CircuitConfig
from sagas.notification.commands import DeliveryPolicy
from sagas.rendering import TemplateRenderer
from sagas.runtime.contents import RenderedContents
from sagas.runtime.engine import SagaEngine
from sagas.template_platform import PlatformContext
from schemas.codec import AvroCodec
from streams.notifier.deliveries import DeliveryDesk
from streams.notifier.requests import Decoded, StartPolicy, decode_requests, without_forgotten
from streams.notifier.traces import SagaTraces
from streams.notifier.worker import NotificationWorker
from streams.process.serve import Process, serve, watchdog_for
from streams.process.watchdog import Watchdog

log = structlog.get_logger()


def bootstrap(
    settings: Settings,
    pool: ConnectionPool,
    *,
    notifier: Notifier | None = None,
    clock: Callable[[], datetime] = utcnow,
    jitter: Callable[[], float] = random.random,
    watchdog: Watchdog | None = None,
) -> NotificationWorker:
    """The worker with real adapters; tests pass their own notifier, clock or jitter."""
    config = delivery_config(settings)
    codec = AvroCodec()
    renderer = template_renderer(settings)
    contents = RenderedContents(renderer)
    recipients = PostgresRecipients(pool)
    engine = SagaEngine(
        contents, CircuitConfig(settings.circuit_failure_threshold, settings.circuit_cool_down_ms)
    )
    traces = SagaTraces()  # one map: the worker fills it, the senders read it
    desk = DeliveryDesk(
        notifier or AppriseNotifier(config),
        PostgresLedger(pool),
        recipients,
        contents,
        config.timeouts,
        settings.delivery_concurrency,
        clock,
        traces,
    )
    start = StartPolicy(
        deadline_ms=settings.notification_deadline_s * 1000,
        digest_window_ms=settings.notification_digest_window_s * 1000,
        policy=DeliveryPolicy(
            max_attempts=settings.notification_max_attempts,
            base_delay_ms=settings.notification_base_delay_ms,
            max_delay_ms=settings.notification_max_delay_ms,
        ),
    )

    index = PostgresNotificationIndex(pool)

    def read_requests(messages: list[Message], now: int) -> Decoded:
        decoded = decode_requests(messages, codec, recipients, renderer, start, now)
        return without_forgotten(decoded, engine.owned, index.known)

    return NotificationWorker(
        settings,
        engine,
        desk,
        read_requests,
        codec=codec,
        clock=clock,
        jitter=jitter,
        watchdog=watchdog,
        traces=traces,
    )


def template_renderer(settings: Settings) -> TemplateRenderer:
    """The renderer sends use: the platform's name and links come from settings, never
    from request data (`NEXUS_APP_NAME`, `NEXUS_APP_URL`)."""
    platform = PlatformContext(name=settings.app_name, url=settings.app_url)
    return TemplateRenderer(settings.templates_dir, platform)


def run(settings: Settings) -> None:
    def build(resources: ExitStack) -> Process:
        pool = ConnectionPool(settings.resolved_database_url, min_size=1, max_size=4)
        resources.enter_context(pool)
        with pool.connection() as conn:
            ensure_ledger(conn)
        worker = bootstrap(settings, pool, watchdog=watchdog_for(settings))
        return Process(worker.ready.is_set, worker.run, worker.watchdog)

    serve("notifier", settings, build, health_port=settings.notifier_health_port)
