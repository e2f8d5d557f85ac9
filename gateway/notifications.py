"""Notification endpoints: ask for a notification, follow it, list a user's, read a saga.

A request is answered 202 once Kafka has it on the notification-requests topic; the saga
worker takes it from there. Reads come from the notifications projection and the ledger.
A token with `notifications:write` (or `notifications:read`) acts for its own subject only;
`notifications:send` (or `sagas:read`, for reading) acts for anyone. A request's data must
hold what its template needs (gateway.notification_data), or it is refused at once with 422.
"""

from __future__ import annotations

import functools
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from aggregates.channels import CHANNELS
from gateway.auth import NOTIFY_ANYONE, READ_SAGAS, Principal
from gateway.body import read_json
from gateway.input_bounds import query_limit
from gateway.notification_data import data_errors
from gateway.problems import Problem
from gateway.services import Services
from infra.config.clock import utcnow
from projections import notification_queries as queries
from sagas.notification.request import MAX_IDEMPOTENCY_KEY, submission
from sagas.rendering import TemplateRenderer
from schemas.timestamps import epoch_ms
from streams.kafka.async_producer import LogUnavailable

WRITE, READ = "notifications:write", "notifications:read"
SEND, SAGAS = NOTIFY_ANYONE, READ_SAGAS
MAX_ID = 128
REPLAYED = "Idempotent-Replayed"  # on a 200 that answers a key seen before
DEFAULT_LIMIT, MAX_LIMIT = 50, 500


@dataclass(frozen=True)
class NotificationBody:
    """A checked `POST /api/v1/notifications` body."""

    user_id: str
    template: str
    channels: tuple[str, ...] | None
    data: dict[str, Any]
    idempotency_key: str | None


def notification_body(body: Any, templates: frozenset[str]) -> NotificationBody:
    """The body, checked field by field; 422 naming every bad field by JSON pointer."""
    if not isinstance(body, dict):
        raise _invalid([("/", "must be an object")])
    body, errors = _unaliased(body)
    errors += [(f"/{_escape(k)}", "unknown field") for k in body if k not in CHECKS]
    errors += [(f"/{k}", "is required") for k in REQUIRED if k not in body]
    errors += [
        (f"/{name}{suffix}", detail)
        for name, check in CHECKS.items()
        if name in body
        for suffix, detail in check(body[name], templates)
    ]
    if errors:
        raise _invalid(errors)
    channels = body.get("channels")
    return NotificationBody(
        user_id=body["user_id"],
        template=body["template"],
        channels=None if channels is None else tuple(channels),
        data=body["data"],
        idempotency_key=body.get("idempotency_key"),
    )


FieldErrors = list[tuple[str, str]]  # (pointer below the field, what is wrong)


def _user_id(value: Any, templates: frozenset[str]) -> FieldErrors:
    return [] if _text(value, MAX_ID) else [("", f"must be a string of 1 to {MAX_ID} characters")]


def _template(value: Any, templates: frozenset[str]) -> FieldErrors:
    if not isinstance(value, str):
        return [("", "must be a string")]
    if value not in templates:
        return [("", f"unknown template; known: {', '.join(sorted(templates))}")]
    return []


def _channels(value: Any, templates: frozenset[str]) -> FieldErrors:
    if value is None:
        return []
    if not isinstance(value, list):
        return [("", "must be an array of channel names")]
    if not value:
        return [("", "must name at least one channel")]
    known = ", ".join(CHANNELS)
    return [(f"/{i}", f"must be one of {known}") for i, c in enumerate(value) if c not in CHANNELS]


def _data(value: Any, templates: frozenset[str]) -> FieldErrors:
    return [] if isinstance(value, dict) else [("", "must be an object")]


def _idempotency_key(value: Any, templates: frozenset[str]) -> FieldErrors:
    if value is None or _text(value, MAX_IDEMPOTENCY_KEY):
        return []
    return [("", f"must be a string of 1 to {MAX_IDEMPOTENCY_KEY} characters")]


def _text(value: Any, longest: int) -> bool:
    return isinstance(value, str) and 0 < len(value) <= longest


CHECKS = {
    "user_id": _user_id,
    "template": _template,
    "channels": _channels,
    "data": _data,
    "idempotency_key": _idempotency_key,
}
REQUIRED = ("user_id", "template", "data")


# The vision's camelCase (`sendNotification({userId, template, data})`), taken as written.
ALIASES = {"userId": "user_id"}


def _unaliased(body: dict[str, Any]) -> tuple[dict[str, Any], FieldErrors]:
    """The body with aliases renamed; naming a field twice is an error at the alias."""
    renamed = {ALIASES.get(k, k): v for k, v in body.items()}
    twice = [a for a, name in ALIASES.items() if a in body and name in body]
    return renamed, [(f"/{a}", f"names the same field as /{ALIASES[a]}") for a in twice]


def _escape(name: Any) -> str:
    """A JSON-pointer reference token (RFC 6901)."""
    return str(name).replace("~", "~0").replace("/", "~1")


def _invalid(errors: list[tuple[str, str]]) -> Problem:
    return Problem(
        422,
        "invalid-body",
        "the body is not a valid notification request",
        errors=[{"pointer": pointer, "detail": detail} for pointer, detail in errors],
    )


async def submit_notification(request: Request) -> Response:
    services, principal = _authorized(request, WRITE, SEND)
    body = await read_json(request, services.settings.max_body_bytes)
    wanted = notification_body(body, services.notification_templates)
    if wanted.user_id != principal.subject and SEND not in principal.scopes:
        raise Problem(403, "insufficient-scope", f"notifying another user needs the scope {SEND}")
    if SEND not in principal.scopes and wanted.template in critical_templates(
        services.settings.templates_dir
    ):
        detail = f"template {wanted.template} is critical (it overrides opt-outs and quiet hours)"
        raise Problem(403, "insufficient-scope", f"{detail}: requesting it needs the scope {SEND}")
    settings = services.settings
    if errors := data_errors(settings, wanted.template, wanted.channels, wanted.data):
        raise _invalid(errors)
    notification = submission(
        user_id=wanted.user_id,
        template=wanted.template,
        data=wanted.data,
        requested_by=principal.subject,
        submitted_at=epoch_ms(utcnow()),
        channels=wanted.channels,
        idempotency_key=wanted.idempotency_key,
        notification_id=None if wanted.idempotency_key else str(uuid.uuid4()),
    )
    location = f"/api/v1/notifications/{notification.notification_id}"
    async with services.pool.connection() as conn:
        if not await queries.user_exists(conn, wanted.user_id):
            raise Problem(404, "user-not-found", f"no user {wanted.user_id}")
        # A key seen before names a saga that started: answer with it, whatever its age
        # (the notifier itself only remembers keys for NEXUS_NOTIFICATION_HORIZON_S).
        known = wanted.idempotency_key and await queries.get_notification(
            conn, notification.notification_id
        )
    if known:
        replayed = {**_accepted(notification.notification_id, location), "status": known["status"]}
        return JSONResponse(replayed, 200, headers={"Location": location, REPLAYED: "true"})
    try:
        await services.notification_requests.submit(
            notification, correlation_id=request.state.correlation_id
        )
    except LogUnavailable as exc:
        detail = f"the event log did not take the request: {exc}"
        raise Problem(503, "log-unavailable", detail, headers={"Retry-After": "5"}) from None
    answer = _accepted(notification.notification_id, location)
    return JSONResponse(answer, 202, headers={"Location": location})


@functools.cache
def critical_templates(root: Path) -> frozenset[str]:
    """Templates whose meta.json says `critical` (operational alerts such as anomaly_alert):
    they reach users through opt-outs and quiet hours, so over HTTP only an operator
    (`notifications:send`) may ask for one; workflows and `notify()` are not affected.
    Read once per folder: templates do not change while the gateway runs."""
    renderer = TemplateRenderer(root)
    return frozenset(name for name in renderer.requestable() if renderer.meta(name).critical)


def _accepted(notification_id: str, location: str) -> dict[str, str]:
    return {"notification_id": notification_id, "status": "accepted", "status_url": location}


async def get_notification(request: Request) -> Response:
    services, principal = _authorized(request, READ)
    notification_id = request.path_params["id"]
    async with services.pool.connection() as conn:
        found = await queries.get_notification(conn, notification_id)
    # Someone else's notification is answered like a missing one: its existence stays hidden.
    if found is None or not _may_read(principal, found["user_id"]):
        raise Problem(
            404,
            "notification-not-found",
            f"no notification {notification_id}: unknown, not yet started, or not yours",
        )
    return JSONResponse(found, headers={"ETag": f'"{found["version"]}"'})


async def list_user_notifications(request: Request) -> Response:
    services, principal = _authorized(request, READ)
    user_id = request.path_params["id"]
    if not _may_read(principal, user_id):
        raise Problem(404, "notifications-not-found", f"no notifications of {user_id} for you")
    limit, cursor = _limit(request.query_params.get("limit")), request.query_params.get("cursor")
    try:
        async with services.pool.connection() as conn:
            items, cursor = await queries.list_user_notifications(conn, user_id, limit, cursor)
    except queries.InvalidCursor:
        detail = "cursor must be a next_cursor of this listing"
        raise Problem(400, "invalid-cursor", detail) from None
    return JSONResponse({"items": items, "next_cursor": cursor})


async def saga_history(request: Request) -> Response:
    services, _ = _authorized(request, SAGAS)
    saga_id = request.path_params["id"]
    async with services.pool.connection() as conn:
        events = await queries.saga_history(conn, saga_id)
    if not events:
        raise Problem(404, "saga-not-found", f"no saga {saga_id}: unknown, or not yet started")
    return JSONResponse({"saga_id": saga_id, "events": events})


def _authorized(request: Request, *scopes: str) -> tuple[Services, Principal]:
    """The services and the caller, who must hold at least one of `scopes`."""
    services: Services = request.state.services
    principal = services.verifier.principal(request.headers.get("authorization"))
    if not principal.scopes.intersection(scopes):
        raise Problem(403, "insufficient-scope", f"this needs the scope {' or '.join(scopes)}")
    return services, principal


def _may_read(principal: Principal, user_id: str) -> bool:
    return user_id == principal.subject or bool(principal.scopes & {SEND, SAGAS})


def _limit(raw: str | None) -> int:
    return query_limit(raw, DEFAULT_LIMIT, MAX_LIMIT)


def notification_routes() -> list[Route]:
    return [
        Route("/api/v1/notifications", submit_notification, methods=["POST"]),
        Route("/api/v1/notifications/{id}", get_notification, methods=["GET"]),
        Route("/api/v1/users/{id}/notifications", list_user_notifications, methods=["GET"]),
        Route("/api/v1/sagas/{id}/history", saga_history, methods=["GET"]),
    ]
