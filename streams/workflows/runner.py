"""Planning and publishing one batch of domain events: the work behind the Faust agent.

Per batch it waits until the read models have applied the batch's events (so lookups see
what the event did), plans each event with `sagas.workflows.plan`, publishes every request
and waits until Kafka acknowledged all of them. A failed attempt is retried until it
succeeds or the worker stops; the caller lets the batch's offsets be committed only after
`handle` returned True. A crash in between plans the batch again: the request ids are
deterministic, so the saga worker absorbs the duplicates.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import structlog
from confluent_kafka import KafkaError, Message
from opentelemetry.trace import SpanKind
from prometheus_client import Counter

from infra.config.settings import Settings
from projections.lookups import LOOKUP_PROJECTIONS
from sagas.notification.request import NotificationSubmitted
from sagas.workflows import SETTING_NAMES, Lookups, Workflow, plan, reacting
from schemas.codec import AvroCodec, DecodeError
from streams.kafka.config import producer_config
from streams.kafka.renewing import RenewingProducer
from streams.kafka.tracing import headers_out, record_span
from streams.notification_requests import request_record

log = structlog.get_logger()

PLANNED = Counter(
    "nexus_workflow_notifications_planned_total",
    "Notification requests published by a workflow",
    ["workflow"],
)
SKIPPED = Counter(
    "nexus_workflow_notifications_skipped_total",
    "Workflow matches that asked for nothing: a row not found, a recipient unset",
    ["workflow"],
)
CATCH_UP_TIMEOUT_S = 30.0
RETRY_S = 1.0
Record = dict[str, Any]


@dataclass(frozen=True)
class Delivered:
    """One message of the events topic, as the agent received it."""

    partition: int
    offset: int
    value: bytes
    headers: Sequence[tuple[str, bytes | None]] = ()


Planned = tuple[Delivered, Record, NotificationSubmitted]


class ReadModels(Lookups, Protocol):
    """The lookups, plus whether the projections have applied given event offsets."""

    def applied(
        self, topic: str, offsets: Mapping[int, int], projections: tuple[str, ...]
    ) -> bool: ...
    def close(self) -> None: ...


class ProjectionsBehind(Exception):
    """The read models did not apply the batch in time: the batch is retried."""


class PublishFailed(Exception):
    """Kafka did not acknowledge every request: the batch is retried, not committed."""


class WorkflowRunner:
    """Turns batches of the events topic into requests on the notification-requests topic."""

    def __init__(
        self,
        settings: Settings,
        workflows: Sequence[Workflow],
        *,
        read_models: ReadModels,
        codec: AvroCodec | None = None,
        catch_up_timeout_s: float = CATCH_UP_TIMEOUT_S,
    ) -> None:
        self.workflows, self.read_models = list(workflows), read_models
        self.codec = codec or AvroCodec()
        self.catch_up_timeout_s = catch_up_timeout_s
        self.topic = settings.topic("events")
        self.requests_topic = settings.topic("notification-requests")
        self.settings_values = {name: getattr(settings, name) for name in SETTING_NAMES}
        self.produce_timeout_s = settings.produce_timeout_ms / 1000 + 5
        self.stopping = threading.Event()
        self.producer = RenewingProducer(producer_config(settings))

    def handle(
        self, messages: Sequence[Delivered], beat: Callable[[], None] = lambda: None
    ) -> bool:
        """Whether every request of the batch is acknowledged; False only when stopped first.
        `beat` is called at every attempt and wait, to show the work is not stuck."""
        while not self.stopping.is_set():
            beat()
            try:
                return self._attempt(messages, beat)
            except Exception:
                log.exception("workflow_batch_failed", messages=len(messages))
                self.stopping.wait(RETRY_S)
        return False

    def stop(self) -> None:
        """Gives up waits and retries: an unfinished batch stays uncommitted, redone later."""
        self.stopping.set()

    def close(self) -> None:
        self.stop()
        self.producer.flush(self.produce_timeout_s)
        self.read_models.close()

    def _attempt(self, messages: Sequence[Delivered], beat: Callable[[], None]) -> bool:
        events = self._decode(messages)
        if events and not self._await_projections(events, beat):
            return False
        self._publish(self._plan(events))
        return True

    def _decode(self, messages: Sequence[Delivered]) -> list[tuple[Delivered, Record]]:
        """The events some workflow reacts to; undecodable ones are the projector's to report."""
        events: list[tuple[Delivered, Record]] = []
        for message in messages:
            try:
                if reacting(self.workflows, self.codec.writer_schema(message.value).name):
                    events.append((message, self.codec.decode(message.value)[1]))
            except DecodeError as error:
                log.info("workflow_undecodable", reason=error.reason, offset=message.offset)
        return events

    def _await_projections(
        self, events: list[tuple[Delivered, Record]], beat: Callable[[], None]
    ) -> bool:
        offsets: dict[int, int] = {}
        for message, _ in events:
            offsets[message.partition] = max(offsets.get(message.partition, -1), message.offset)
        deadline = time.monotonic() + self.catch_up_timeout_s
        while not self.read_models.applied(self.topic, offsets, LOOKUP_PROJECTIONS):
            if time.monotonic() > deadline:
                raise ProjectionsBehind(f"read models behind {self.topic} at {offsets}")
            beat()  # waiting on the projector is not being stuck: its watchdog watches it
            if self.stopping.wait(0.05):
                return False
        return True

    def _plan(self, events: list[tuple[Delivered, Record]]) -> list[Planned]:
        planned: list[Planned] = []
        for message, event in events:
            outcome = plan(self.workflows, event, self.read_models, self.settings_values)
            for skipped in outcome.skipped:
                SKIPPED.labels(skipped.workflow).inc()
                log.warning(
                    "workflow_skipped",
                    workflow=skipped.workflow,
                    reason=skipped.reason,
                    event_type=event["type"],
                    event_id=event["event_id"],
                    aggregate_id=event["aggregate_id"],
                    correlation_id=event["correlation_id"],
                )
            planned.extend((message, event, request) for request in outcome.requests)
        return planned

    def _publish(self, planned: list[Planned]) -> None:
        failures: list[str] = []

        def delivered(error: KafkaError | None, _: Message) -> None:
            if error is not None:
                failures.append(str(error))

        for message, event, request in planned:
            record = request_record(
                request, correlation_id=event["correlation_id"], causation_id=event["event_id"]
            )
            payload = self.codec.encode(request.TYPE, record)
            with record_span(request.requested_by, message.headers, SpanKind.PRODUCER):
                headers = headers_out()  # the request joins the event's trace
            self.producer.produce(
                self.requests_topic, payload, request.notification_id, delivered, headers
            )
        if self.producer.flush(self.produce_timeout_s) or failures:
            raise PublishFailed(failures[0] if failures else "flush timed out")
        for _, event, request in planned:
            PLANNED.labels(request.requested_by.removeprefix("workflow:")).inc()
            log.info(
                "workflow_requested",
                notification_id=request.notification_id,
                requested_by=request.requested_by,
                template=request.template,
                event_id=event["event_id"],
                correlation_id=event["correlation_id"],
            )
