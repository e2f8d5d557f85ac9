"""The workflow runner: domain events in, `notification.submitted` requests out, at least once.

Per batch it waits until the read models have applied the batch's events (so lookups see
what the event did), plans each event with `sagas.workflows.plan`, publishes every request
and flushes, and only then commits the batch's offsets. A crash in between plans the batch
again; the ids are deterministic, so the saga worker absorbs the duplicates.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import structlog
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from prometheus_client import Counter

from infra.logging import configure_logging
from infra.settings import Settings
from projections.lookups import LOOKUP_PROJECTIONS, PostgresLookups
from sagas.notification.request import NotificationSubmitted
from sagas.rendering import TemplateRenderer
from sagas.workflows import SETTING_NAMES, Lookups, Workflow, parse_workflows, plan, reacting
from schemas.codec import AvroCodec, DecodeError
from streams.health import HealthServer
from streams.kafka_config import consumer_config, producer_config
from streams.notification_requests import request_record
from streams.polling import poll_batch
from streams.topics import ensure_topics

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
CATCH_UP_TIMEOUT_S = 30.0  # well under max.poll.interval.ms: the consumer is not polled meanwhile
RETRY_S = 1.0
Record = dict[str, Any]


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
    """Consumes the events topic in group `<prefix>.workflows` and publishes the requests."""

    def __init__(
        self,
        settings: Settings,
        workflows: Sequence[Workflow],
        *,
        read_models: ReadModels,
        codec: AvroCodec | None = None,
        group: str | None = None,
        catch_up_timeout_s: float = CATCH_UP_TIMEOUT_S,
    ) -> None:
        self.workflows, self.read_models = list(workflows), read_models
        self.codec = codec or AvroCodec()
        self.catch_up_timeout_s = catch_up_timeout_s
        self.topic = settings.topic("events")
        self.requests_topic = settings.topic("notification-requests")
        self.settings_values = {name: getattr(settings, name) for name in SETTING_NAMES}
        self.produce_timeout_s = settings.produce_timeout_ms / 1000 + 5
        self.ready = threading.Event()
        group = group or f"{settings.topic_prefix}.workflows"
        static = {
            "group.instance.id": f"{group}.{settings.instance_id}",
            "auto.offset.reset": settings.workflows_start_from,
        }
        self.consumer = Consumer(
            consumer_config(settings, group, **static, **{"session.timeout.ms": 10000})
        )
        self.producer = Producer(producer_config(settings))

    def run(self, stop: threading.Event) -> None:
        self.consumer.subscribe([self.topic], on_assign=lambda *_: self.ready.set())
        try:
            while not stop.is_set():
                messages = self._readable(poll_batch(self.consumer, 500, 0.1))
                if messages:
                    self._handle(messages, stop)
        finally:
            self.producer.flush(self.produce_timeout_s)
            self.consumer.close()
            self.read_models.close()

    def _readable(self, messages: list[Message]) -> list[Message]:
        readable = []
        for message in messages:
            error: KafkaError | None = message.error()
            if error is None:
                readable.append(message)
            elif error.fatal():
                raise KafkaException(error)
            else:
                log.warning("consume_error", error=str(error))
        return readable

    def _handle(self, messages: list[Message], stop: threading.Event) -> None:
        try:
            events = self._decode(messages)
            if events and not self._await_projections(events, stop):
                return  # stopping: the batch stays uncommitted and is redone at the next start
            self._publish(self._plan(events))
        except Exception:
            log.exception("workflow_batch_failed", messages=len(messages))
            self._rewind(messages)
            stop.wait(RETRY_S)
            return
        self._commit(messages)

    def _decode(self, messages: list[Message]) -> list[tuple[Message, Record]]:
        """The events some workflow reacts to; undecodable ones are the projector's to report."""
        events: list[tuple[Message, Record]] = []
        for message in messages:
            try:
                if reacting(self.workflows, self.codec.writer_schema(message.value()).name):
                    events.append((message, self.codec.decode(message.value())[1]))
            except DecodeError as error:
                log.info("workflow_undecodable", reason=error.reason, offset=message.offset())
        return events

    def _await_projections(
        self, events: list[tuple[Message, Record]], stop: threading.Event
    ) -> bool:
        offsets: dict[int, int] = {}
        for message, _ in events:
            offsets[message.partition()] = max(
                offsets.get(message.partition(), -1), message.offset()
            )
        deadline = time.monotonic() + self.catch_up_timeout_s
        while not self.read_models.applied(self.topic, offsets, LOOKUP_PROJECTIONS):
            if time.monotonic() > deadline:
                raise ProjectionsBehind(f"read models behind {self.topic} at {offsets}")
            if stop.wait(0.05):
                return False
        return True

    def _plan(
        self, events: list[tuple[Message, Record]]
    ) -> list[tuple[Record, NotificationSubmitted]]:
        planned: list[tuple[Record, NotificationSubmitted]] = []
        for _, event in events:
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
            planned.extend((event, request) for request in outcome.requests)
        return planned

    def _publish(self, planned: list[tuple[Record, NotificationSubmitted]]) -> None:
        failures: list[str] = []

        def delivered(error: KafkaError | None, _: Message) -> None:
            if error is not None:
                failures.append(str(error))

        for event, request in planned:
            record = request_record(
                request, correlation_id=event["correlation_id"], causation_id=event["event_id"]
            )
            payload = self.codec.encode(request.TYPE, record)
            self.producer.produce(
                self.requests_topic, payload, key=request.notification_id, on_delivery=delivered
            )
        if self.producer.flush(self.produce_timeout_s) or failures:
            raise PublishFailed(failures[0] if failures else "flush timed out")
        for event, request in planned:
            PLANNED.labels(request.requested_by.removeprefix("workflow:")).inc()
            log.info(
                "workflow_requested",
                notification_id=request.notification_id,
                requested_by=request.requested_by,
                template=request.template,
                event_id=event["event_id"],
                correlation_id=event["correlation_id"],
            )

    def _commit(self, messages: list[Message]) -> None:
        ends: dict[int, int] = {}
        for message in messages:
            ends[message.partition()] = max(ends.get(message.partition(), 0), message.offset() + 1)
        offsets = [TopicPartition(self.topic, p, o) for p, o in sorted(ends.items())]
        try:
            self.consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:  # e.g. rebalanced away: the new owner redoes the batch
            log.warning("workflow_commit_failed", error=str(exc))

    def _rewind(self, messages: list[Message]) -> None:
        starts: dict[int, int] = {}
        for message in messages:
            starts[message.partition()] = min(
                starts.get(message.partition(), message.offset()), message.offset()
            )
        for partition, offset in starts.items():
            try:
                self.consumer.seek(TopicPartition(self.topic, partition, offset))
            except KafkaException as exc:  # revoked meanwhile: its new owner starts over
                log.warning("workflow_rewind_failed", partition=partition, error=str(exc))


def load_workflows(settings: Settings) -> list[Workflow]:
    """The configured workflows, checked against the templates they may request."""
    text = settings.workflows_file.read_text(encoding="utf-8")
    return parse_workflows(text, templates=TemplateRenderer(settings.templates_dir).requestable())


def bootstrap(
    settings: Settings,
    *,
    workflows: Sequence[Workflow] | None = None,
    read_models: ReadModels | None = None,
    group: str | None = None,
) -> WorkflowRunner:
    """The runner wired to the configured workflows and the PostgreSQL read models."""
    return WorkflowRunner(
        settings,
        load_workflows(settings) if workflows is None else workflows,
        read_models=read_models or PostgresLookups(settings.resolved_database_url),
        group=group,
    )


def run(settings: Settings) -> None:
    """Composition root of the workflows process; SIGTERM or SIGINT stop it cleanly."""
    configure_logging(settings.log_level, "workflows")
    runner = bootstrap(settings)  # an invalid workflows file stops the process here
    ensure_topics(settings)
    health = HealthServer("127.0.0.1", settings.workflows_health_port, runner.ready.is_set)
    health.start()
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    log.info("workflows_started", workflows=[w.name for w in runner.workflows])
    runner.run(stop)
    health.stop()
    log.info("workflows_stopped")
