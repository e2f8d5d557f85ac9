"""What the gateway's endpoints use, built once by the composition root (gateway.app)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from psycopg_pool import AsyncConnectionPool

from gateway.auth import TokenVerifier
from gateway.dispatch import CommandDispatcher
from gateway.outcomes import OutcomeListener
from gateway.publishing import EventPublisher
from infra.config.settings import Settings
from schemas.registry import SchemaRegistry
from streams.ingest import Ingestor
from streams.kafka.async_producer import AsyncProducer
from streams.notification_requests import NotificationRequests

if TYPE_CHECKING:  # gateway.rate_limits reads the command routes, which import this module
    from gateway.rate_limits import RateLimiter


@dataclass
class Services:
    settings: Settings
    registry: SchemaRegistry
    verifier: TokenVerifier
    producer: AsyncProducer
    listener: OutcomeListener
    dispatcher: CommandDispatcher
    pool: AsyncConnectionPool
    notification_requests: NotificationRequests
    notification_templates: frozenset[str]  # names of the templates under templates_dir
    ingestor: Ingestor  # analytics ingestion, with the tracking plan read at start
    rate_limits: RateLimiter
    event_publisher: EventPublisher  # POST /api/v1/events
