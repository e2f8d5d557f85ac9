"""Command endpoints, declared as data: each route names its command and where its id is."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from aggregates.actor import USERS_ADMIN
from gateway.auth import Principal
from gateway.body import command_data, parse_json, quick_command_data, read_body
from gateway.consistency import outcome_visible
from gateway.dispatch import checked_id, command_record, expected_version, requested_wait
from gateway.json_response import JSONResponse
from gateway.outcomes import Outcome
from gateway.problems import Problem
from gateway.services import Services
from schemas.registry import SchemaRegistry
from streams.ids import new_id

REJECTION_STATUS = {
    "conflict": 409,
    "invalid": 422,
    "not_found": 404,
    "forbidden": 403,
    "precondition": 412,
    "internal": 500,
}


@dataclass(frozen=True)
class CommandRoute:
    path: str
    method: str
    command: str
    aggregate_type: str
    id_param: str | None = None  # None: a create, the id comes from the body or is new
    body_id: str | None = None  # body field that may carry a client-chosen id on create
    path_data: tuple[str, ...] = ()  # path parameters that are also command data
    body_optional: bool = False
    caller_default: str | None = None  # data field that defaults to the caller's id

    @property
    def scope(self) -> str:
        return f"{self.aggregate_type}s:write"

    @property
    def quick(self) -> bool:
        """Whether its body may be read in one msgspec pass (gateway.body.quick_command_data):
        not where the path or the caller fill in data."""
        return not self.path_data and self.caller_default is None


COMMAND_ROUTES = (
    CommandRoute("/api/v1/users", "POST", "RegisterUser", "user", body_id="user_id"),
    CommandRoute("/api/v1/users/{id}", "PATCH", "UpdateUserProfile", "user", "id"),
    CommandRoute(
        "/api/v1/users/{id}/preferences", "PUT", "SetNotificationPreferences", "user", "id"
    ),
    CommandRoute(
        "/api/v1/users/{id}/deactivate", "POST", "DeactivateUser", "user", "id", body_optional=True
    ),
    CommandRoute(
        "/api/v1/workspaces",
        "POST",
        "CreateWorkspace",
        "workspace",
        body_id="workspace_id",
        caller_default="owner_id",
    ),
    CommandRoute("/api/v1/workspaces/{id}", "PATCH", "RenameWorkspace", "workspace", "id"),
    CommandRoute(
        "/api/v1/workspaces/{id}/members", "POST", "AddWorkspaceMember", "workspace", "id"
    ),
    CommandRoute(
        "/api/v1/workspaces/{id}/members/{user_id}",
        "DELETE",
        "RemoveWorkspaceMember",
        "workspace",
        "id",
        path_data=("user_id",),
        body_optional=True,
    ),
    CommandRoute(
        "/api/v1/workspaces/{id}/archive",
        "POST",
        "ArchiveWorkspace",
        "workspace",
        "id",
        body_optional=True,
    ),
)


def endpoint(spec: CommandRoute) -> Callable[[Request], Awaitable[Response]]:
    async def handle(request: Request) -> Response:
        services: Services = request.state.services
        principal = services.verifier.principal(request.headers.get("authorization"))
        principal.require(spec.scope)
        raw = await read_body(request, services.settings.max_body_bytes)
        aggregate_id, data = _command_input(spec, request, raw, services.registry, principal)
        record = command_record(
            spec.command,
            spec.aggregate_type,
            aggregate_id,
            data,
            actor=principal.subject,
            actor_scopes=principal.scopes,
            expected_version=expected_version(request.headers.get("if-match")),
            correlation_id=request.state.correlation_id,
        )
        wait = requested_wait(request.headers.get("prefer"))
        deadline = time.monotonic() + (wait or 0.0)
        outcome = await services.dispatcher.dispatch(record, wait)
        # A 200/201 promises the next request sees the change: until the read models
        # have it, the command counts as pending, as when its outcome came too late.
        events = services.settings.topic("events")
        if outcome and not await outcome_visible(services.pool, events, outcome, deadline):
            outcome = None
        return _answer(spec, record, outcome, wait)

    handle.__name__ = spec.command  # names the route in metrics and logs
    return handle


def _command_input(
    spec: CommandRoute, request: Request, raw: bytes, registry: SchemaRegistry, principal: Principal
) -> tuple[str, dict[str, Any]]:
    """The aggregate id and the command's data, from the body and the path; the problems of
    a body are always those of parse_json and command_data."""
    quick = None
    if spec.quick and raw:
        quick = quick_command_data(registry, spec.command, raw, spec.body_id)
    if quick is not None:
        data, chosen = quick
        return _id_of(spec, request, chosen, principal), data
    body = parse_json(raw, optional=spec.body_optional)
    aggregate_id, body = _aggregate_id(spec, request, body, principal)
    return aggregate_id, command_data(registry, spec.command, body)


def _aggregate_id(
    spec: CommandRoute, request: Request, body: Any, principal: Principal
) -> tuple[str, Any]:
    if isinstance(body, dict):
        body = dict(body)
        for name in spec.path_data:
            body[name] = request.path_params[name]
        if spec.caller_default is not None:
            body.setdefault(spec.caller_default, principal.subject)
    if spec.id_param is not None:
        return _id_of(spec, request, None, principal), body
    chosen = body.pop(spec.body_id, None) if isinstance(body, dict) and spec.body_id else None
    return _id_of(spec, request, chosen, principal), body


def _id_of(spec: CommandRoute, request: Request, chosen: Any, principal: Principal) -> str:
    """The path's id; else the one the body chose, or a new one."""
    if spec.id_param is not None:
        return checked_id(request.path_params[spec.id_param], f"path:{spec.id_param}")
    if chosen is None:
        return _default_id(spec, principal)
    return checked_id(chosen, f"/{spec.body_id}")


def _default_id(spec: CommandRoute, principal: Principal) -> str:
    """A new id; but registering without a user_id registers the caller itself, unless the
    caller is an operator creating accounts for others."""
    if spec.command == "RegisterUser" and USERS_ADMIN not in principal.scopes:
        return checked_id(principal.subject, "/user_id")
    return new_id()


def _answer(
    spec: CommandRoute, record: dict[str, Any], outcome: Outcome | None, wait: float | None
) -> Response:
    command_id, aggregate_id = record["command_id"], record["aggregate_id"]
    if outcome is None:
        body = {"command_id": command_id, "aggregate_id": aggregate_id, "status": "pending"}
        return JSONResponse(body, 202, headers={"Location": f"/api/v1/commands/{command_id}"})
    if outcome["status"] == "rejected":
        status = REJECTION_STATUS.get(outcome["error_kind"] or "", 422)
        raise Problem(
            status,
            outcome["error_code"],
            outcome["error_message"],
            command_id=command_id,
            aggregate_id=aggregate_id,
        )
    headers = {"ETag": f'"{outcome["version"]}"', "Preference-Applied": f"wait={wait:g}"}
    created = spec.id_param is None
    if created:
        headers["Location"] = f"/api/v1/{spec.aggregate_type}s/{aggregate_id}"
    body = {
        "command_id": command_id,
        "aggregate_id": aggregate_id,
        "status": "accepted",
        "version": outcome["version"],
        "position": outcome["position"],
    }
    return JSONResponse(body, 201 if created else 200, headers=headers)


def command_routes() -> list[Route]:
    return [Route(s.path, endpoint(s), methods=[s.method]) for s in COMMAND_ROUTES]
