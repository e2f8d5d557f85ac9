"""Turn request messages (`notification.submitted`) into saga-starting commands."""

from __future__ import annotations

from dataclasses import dataclass

from confluent_kafka import Message

from aggregates import codec as data_codec
from sagas.delivery.recipients import Recipients
from sagas.notification.commands import DeliveryPolicy, StartNotification
from sagas.notification.request import NotificationSubmitted
from sagas.rendering import TemplateError, TemplateRenderer
from schemas.codec import AvroCodec, DecodeError
from streams.notifier.engine import Work


@dataclass(frozen=True)
class StartPolicy:
    deadline_ms: int
    policy: DeliveryPolicy


@dataclass
class Decoded:
    works: list[Work]
    undecodable: list[tuple[Message, DecodeError]]


def decode_requests(
    messages: list[Message],
    codec: AvroCodec,
    recipients: Recipients,
    renderer: TemplateRenderer,
    start: StartPolicy,
    now: int,
) -> Decoded:
    requests: list[tuple[Message, str, NotificationSubmitted]] = []
    undecodable: list[tuple[Message, DecodeError]] = []
    for message in messages:
        try:
            schema, record = codec.decode(message.value())
            if schema.name != NotificationSubmitted.TYPE:
                raise DecodeError("invalid", f"{schema.name} is not a notification request")
            request = data_codec.from_data(NotificationSubmitted, record["data"])
        except DecodeError as error:
            undecodable.append((message, error))
            continue
        except ValueError as error:
            undecodable.append((message, DecodeError("invalid", str(error))))
            continue
        requests.append((message, record["event_id"], request))
    found = recipients.find({r.user_id for _, _, r in requests})
    works = []
    for message, event_id, request in requests:
        recipient = found.get(request.user_id)
        command = StartNotification(
            notification_id=request.notification_id,
            user_id=request.user_id,
            template=request.template,
            data=request.data,
            requested_at=now,
            deadline=now + start.deadline_ms,
            preferences=recipient.preferences() if recipient else (),
            quiet_hours=recipient.quiet_hours if recipient else None,
            channels=request.channels,
            idempotency_key=request.idempotency_key,
            critical=_critical(renderer, request.template),
            policy=start.policy,
        )
        works.append(Work(request.notification_id, message.partition(), command, event_id))
    return Decoded(works, undecodable)


def _critical(renderer: TemplateRenderer, template: str) -> bool:
    try:
        return renderer.meta(template).critical
    except TemplateError:
        return False  # an unknown template fails at rendering, with the reason recorded
