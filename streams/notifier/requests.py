"""Turn request messages into saga commands: `notification.submitted` starts a saga,
`notification.digest_item_submitted` adds an item to (and maybe opens) a digest."""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Container
from dataclasses import dataclass

import structlog
from confluent_kafka import Message

from aggregates import codec as data_codec
from sagas.adapters.recipients import Recipients
from sagas.notification.commands import CollectDigestItem, DeliveryPolicy, StartNotification
from sagas.notification.request import DigestItemSubmitted, NotificationSubmitted
from sagas.rendering import TemplateError, TemplateMeta, TemplateRenderer
from sagas.runtime.engine import Work
from schemas.codec import AvroCodec, DecodeError

log = structlog.get_logger()


@dataclass(frozen=True)
class StartPolicy:
    deadline_ms: int
    policy: DeliveryPolicy
    digest_window_ms: int = 900_000
    digest_template: str = "digest"


Request = NotificationSubmitted | DigestItemSubmitted
REQUEST_TYPES: dict[str, type[Request]] = {
    NotificationSubmitted.TYPE: NotificationSubmitted,
    DigestItemSubmitted.TYPE: DigestItemSubmitted,
}


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
    requests: list[tuple[Message, str, Request]] = []
    undecodable: list[tuple[Message, DecodeError]] = []
    for message in messages:
        try:
            schema, record = codec.decode(message.value())
            kind = REQUEST_TYPES.get(schema.name)
            if kind is None:
                raise DecodeError("invalid", f"{schema.name} is not a notification request")
            request: Request = data_codec.from_data(kind, record["data"])
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
        preferences = recipient.preferences() if recipient else ()
        if isinstance(request, DigestItemSubmitted):
            collect = CollectDigestItem(
                digest_id=request.digest_id,
                user_id=request.user_id,
                template=start.digest_template,
                item=request.item,
                window_end=request.window_end,
                window_ms=start.digest_window_ms,
                received_at=now,
                deadline=max(now, request.window_end) + start.deadline_ms,
                preferences=preferences,
                quiet_hours=recipient.quiet_hours if recipient else None,
                policy=start.policy,
            )
            works.append(Work(request.digest_id, message.partition(), collect, event_id))
            continue
        meta = _meta(renderer, request.template)
        digest = meta.digest and not meta.critical
        command = StartNotification(
            notification_id=request.notification_id,
            user_id=request.user_id,
            template=request.template,
            data=request.data,
            requested_at=now,
            deadline=now + start.deadline_ms,
            preferences=preferences,
            quiet_hours=recipient.quiet_hours if recipient else None,
            channels=request.channels,
            idempotency_key=request.idempotency_key,
            critical=meta.critical,
            policy=start.policy,
            digest_window_ms=start.digest_window_ms if digest else None,
            digest_summary=_summary(renderer, request) if digest else "",
        )
        works.append(Work(request.notification_id, message.partition(), command, event_id))
    return Decoded(works, undecodable)


def _meta(renderer: TemplateRenderer, template: str) -> TemplateMeta:
    try:
        return renderer.meta(template)
    except TemplateError:
        return TemplateMeta()  # an unknown template fails at rendering, with the reason recorded


def _summary(renderer: TemplateRenderer, request: NotificationSubmitted) -> str:
    try:
        data = json.loads(request.data)
    except ValueError:
        return request.template
    return renderer.summary(request.template, data) if isinstance(data, dict) else request.template


def without_forgotten(
    decoded: Decoded, held: Container[str], known: Callable[[Collection[str]], set[str]]
) -> Decoded:
    """Drop keyed requests for sagas this worker no longer holds but the read model knows.

    Such a saga started before the horizon and has ended; starting it again under its old
    id would write its versions a second time. Unkeyed requests have fresh ids.
    """
    asked = {
        w.saga_id
        for w in decoded.works
        if isinstance(w.command, StartNotification)
        and w.command.idempotency_key is not None
        and w.saga_id not in held
    }
    finished = known(asked) if asked else set()
    for saga_id in sorted(finished):
        log.info("request_for_finished_saga_ignored", notification_id=saga_id)
    works = [w for w in decoded.works if w.saga_id not in finished]
    return Decoded(works, decoded.undecodable)
