"""Query endpoints: they read only projections, optionally after a command's position."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway import visibility
from gateway.auth import Principal
from gateway.consistency import Position, reached
from gateway.input_bounds import query_limit
from gateway.log_positions import names_event
from gateway.problems import Problem
from gateway.rate_policies import AFTER_WAITS
from gateway.services import Services
from projections import queries


async def get_user(request: Request) -> Response:
    services, principal = _authorized(request, "users:read")
    await _after(request, services, ["users", "memberships"])
    async with services.pool.connection() as conn:
        user = await queries.get_user(conn, request.path_params["id"])
        if user is not None and not visibility.sees_whole(principal, user):
            mine = await queries.workspace_ids_of(conn, principal.subject)
            user = visibility.user_view(principal, user, mine)
    return _found(user, "user", request.path_params["id"])


async def list_users(request: Request) -> Response:
    services, principal = _authorized(request, "users:read")
    await _after(request, services, ["users", "memberships"])
    limit = _limit(request.query_params.get("limit"))
    cursor = request.query_params.get("cursor")
    everyone = visibility.sees_every_user(principal)
    async with services.pool.connection() as conn:
        items = await queries.list_users(
            conn,
            workspace_id=request.query_params.get("workspace_id"),
            limit=limit,
            after=cursor,
            visible_to=None if everyone else principal.subject,
        )
    next_cursor = items[-1]["user_id"] if len(items) == limit else None
    shown = [visibility.listed_user(principal, item) for item in items]
    return JSONResponse({"items": shown, "next_cursor": next_cursor})


async def get_workspace(request: Request) -> Response:
    services, principal = _authorized(request, "workspaces:read")
    await _after(request, services, ["workspaces", "memberships"])
    async with services.pool.connection() as conn:
        workspace = await queries.get_workspace(conn, request.path_params["id"])
    workspace = visibility.workspace_view(principal, workspace)
    return _found(workspace, "workspace", request.path_params["id"])


async def get_command(request: Request) -> Response:
    services, _ = _authorized(request, "commands:read")
    command_id = request.path_params["id"]
    outcome = services.listener.recent(command_id)
    if outcome is None:
        async with services.pool.connection() as conn:
            outcome = await queries.get_command_outcome(conn, command_id)
    if outcome is None:
        raise Problem(
            404,
            "command-unknown",
            f"no outcome for {command_id} yet: unknown, or not yet processed",
        )
    return JSONResponse(queries.json_ready(outcome))


def _authorized(request: Request, scope: str) -> tuple[Services, Principal]:
    services: Services = request.state.services
    principal = services.verifier.principal(request.headers.get("authorization"))
    principal.require(scope)
    return services, principal


async def _after(request: Request, services: Services, projections: list[str]) -> None:
    """Read-your-writes: wait, bounded, until the projections passed the given position."""
    after = request.query_params.get("after")
    if after is None:
        return
    position = Position.parse(after)
    if position is None:
        raise Problem(400, "invalid-position", "after must be a position such as 3-1542")
    topic = services.settings.topic("events")
    deadline = time.monotonic() + services.settings.read_your_writes_timeout_s
    # Each wait polls the database for seconds: a caller may hold only a few at once (429).
    with services.rate_limits.concurrent(request, AFTER_WAITS):
        if not await reached(services.pool, topic, position, projections, deadline):
            await _never_reached(services, topic, position, after)
            raise Problem(
                503,
                "projection-lagging",
                f"projections have not reached {after} yet",
                headers={"Retry-After": "1"},
            )


async def _never_reached(services: Services, topic: str, at: Position, after: str) -> None:
    """400 for a position that names no event: waiting longer would not help."""
    exists = await asyncio.to_thread(names_event, services.settings, topic, at.partition, at.offset)
    if exists is False:
        detail = f"no event is at {after}: give the position a command's answer carried"
        raise Problem(400, "position-not-in-log", detail)


def _limit(raw: str | None) -> int:
    return query_limit(raw, 50, 500)


def _found(row: dict[str, Any] | None, kind: str, ident: str) -> Response:
    if row is None:
        raise Problem(404, f"{kind}-not-found", f"no {kind} {ident}")
    return JSONResponse(row, headers={"ETag": f'"{row["version"]}"'})


def query_routes() -> list[Route]:
    return [
        Route("/api/v1/users", list_users, methods=["GET"]),
        Route("/api/v1/users/{id}", get_user, methods=["GET"]),
        Route("/api/v1/workspaces/{id}", get_workspace, methods=["GET"]),
        Route("/api/v1/commands/{id}", get_command, methods=["GET"]),
    ]
