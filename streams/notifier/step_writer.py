"""What one notifier step writes to Kafka, inside the step's transaction."""

from __future__ import annotations

from datetime import datetime

import structlog
from confluent_kafka import Producer

from sagas.notification.request import DigestItemSubmitted
from sagas.runtime.engine import Step
from schemas.codec import AvroCodec
from streams.kafka.dead_letters import dead_letter
from streams.kafka.topics import Topics
from streams.kafka.tracing import headers_out
from streams.notifier.records import circuit_record, digest_item_record, saga_record
from streams.notifier.requests import Decoded
from streams.notifier.traces import SagaTraces

log = structlog.get_logger()
CONSUMER_NAME = "notifier"


def write_step(
    producer: Producer,
    codec: AvroCodec,
    topics: Topics,
    step: Step,
    decoded: Decoded,
    moment: datetime,
    traces: SagaTraces,
) -> None:
    """Produce what one step decided, inside the step's transaction: saga events, digest
    items, circuit events and dead letters for requests that could not be decoded."""
    for out in step.events:
        # The engine built the event from the schema's own types: no check, compiled writer.
        payload = codec.encoder(out.event.TYPE)(saga_record(out, moment))
        headers = traces.headers(out.saga_id, f"notification {out.event.TYPE}")
        partition = out.partition
        producer.produce(
            topics.notifications, payload, key=out.saga_id, partition=partition, headers=headers
        )
    for forward in step.forwards:
        item = DigestItemSubmitted(
            forward.digest_id, forward.user_id, forward.window_end, forward.item
        )
        payload = codec.encode(item.TYPE, digest_item_record(item, moment))
        producer.produce(
            topics.notification_requests, payload, key=forward.digest_id, headers=headers_out()
        )
    for channel, event in step.circuit_events:
        payload = codec.encode(event.TYPE, circuit_record(channel, event, moment))
        producer.produce(
            topics.notifications, payload, key=f"channel:{channel}", headers=headers_out()
        )
    for message, error in decoded.undecodable:
        log.warning("request_dead_lettered", reason=error.reason, offset=message.offset())
        letter = dead_letter(codec, message, error, CONSUMER_NAME, moment)
        producer.produce(
            topics.deadletter, letter, partition=message.partition(), headers=headers_out()
        )
    for rejected in step.rejected:
        log.warning(
            "saga_command_rejected",
            saga_id=rejected.work.saga_id,
            command=type(rejected.work.command).__name__,
            code=rejected.error.code,
        )
