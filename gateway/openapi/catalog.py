"""What the read routes and the process endpoints declare, keyed by their endpoints.

Scopes, limits and bounds are the route modules' own constants, imported, never retyped.
The command routes are derived instead (gateway.openapi.commands); analytics, ingestion and
events over HTTP are in gateway.openapi.catalog_writes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gateway import app, notifications, queries, traces
from gateway.auth import READ_TRACES
from gateway.notifications import DEFAULT_LIMIT, MAX_LIMIT, READ, SAGAS, SEND
from gateway.openapi.model import DATABASE, LOG, Operation, Param, Reply
from gateway.openapi.schema_kit import EXAMPLE_IDS, ID, POSITION, ref

AFTER = Param(
    "after",
    POSITION,
    "read your writes: wait (bounded) until the read models passed this position, a "
    "command's `position`; 503 `projection-lagging` if they do not in time",
)
CURSOR = Param("cursor", {"type": "string", "maxLength": 512}, "a `next_cursor` from the last page")
LAGGING = "projection-lagging: the read models did not reach `after` in time"


def limit(default: int, most: int) -> Param:
    schema = {"type": "integer", "minimum": 1, "maximum": most, "default": default}
    return Param("limit", schema, f"items per page, 1 to {most}")


def id_of(what: str) -> Param:
    return Param("id", ID, f"the {what}'s id", example=EXAMPLE_IDS.get(what))


HEALTH = {
    app.healthz: Operation(
        summary="Liveness",
        tag="process",
        description="503 while the outcome listener has stopped going round (its watchdog).",
        replies={200: Reply("alive", ref("Liveness"))},
        problems={503: "failing"},
    ),
    app.readyz: Operation(
        summary="Readiness",
        tag="process",
        description="200 only while Kafka and PostgreSQL answer and outcomes are followed.",
        replies={200: Reply("ready", ref("Readiness"))},
        problems={503: "not ready"},
    ),
    app.metrics: Operation(
        summary="Prometheus metrics",
        tag="process",
        replies={200: Reply("the text exposition format", {"type": "string"}, "text/plain")},
    ),
}

READS = {
    queries.get_user: Operation(
        summary="Read a user",
        tag="users",
        description="Your own full record; a user sharing a workspace with you as a public "
        "profile (no email, channels or quiet hours); anyone else: 404.",
        scopes=("users:read",),
        params=(AFTER,),
        path_params={"id": id_of("user")},
        replies={
            200: Reply(
                "the user, with its workspaces",
                {"anyOf": [ref("User"), ref("PublicUser")]},
                headers=("ETag",),
            )
        },
        problems={
            400: "invalid-position, position-not-in-log",
            404: "user-not-found",
            503: LAGGING,
        },
        uses=frozenset({DATABASE}),
    ),
    queries.list_users: Operation(
        summary="List users",
        tag="users",
        description="You and the users sharing a workspace with you (operators: everyone), "
        "by id, in keyset pages.",
        scopes=("users:read",),
        params=(
            Param("workspace_id", ID, "only this workspace's members"),
            limit(50, 500),
            Param("cursor", ID, "the last page's `next_cursor` (a user id)"),
            AFTER,
        ),
        replies={200: Reply("a page of users", ref("UserPage"))},
        problems={400: "invalid-limit, invalid-position, position-not-in-log", 503: LAGGING},
        uses=frozenset({DATABASE}),
    ),
    queries.get_workspace: Operation(
        summary="Read a workspace",
        tag="workspaces",
        description="With its members; a workspace you are not a member of answers 404.",
        scopes=("workspaces:read",),
        params=(AFTER,),
        path_params={"id": id_of("workspace")},
        replies={200: Reply("the workspace", ref("Workspace"), headers=("ETag",))},
        problems={
            400: "invalid-position, position-not-in-log",
            404: "workspace-not-found",
            503: LAGGING,
        },
        uses=frozenset({DATABASE}),
    ),
    queries.get_command: Operation(
        summary="Read a command's outcome",
        tag="commands",
        scopes=("commands:read",),
        path_params={"id": Param("id", ID, "the command id a 202 answered")},
        replies={200: Reply("the outcome", ref("CommandOutcome"))},
        problems={404: "command-unknown: unknown, or not processed yet"},
        uses=frozenset({DATABASE}),
    ),
    notifications.get_notification: Operation(
        summary="Read a notification",
        tag="notifications",
        description="Its status, routes and every delivery attempt from the ledger. Your "
        f"own, unless you hold {SEND} or {SAGAS}.",
        scopes=(READ,),
        path_params={"id": id_of("notification")},
        replies={200: Reply("the notification", ref("NotificationDetail"), headers=("ETag",))},
        problems={404: "notification-not-found"},
        uses=frozenset({DATABASE}),
    ),
    notifications.list_user_notifications: Operation(
        summary="List a user's notifications",
        tag="notifications",
        description=f"Newest first. Your own, unless you hold {SEND} or {SAGAS}.",
        scopes=(READ,),
        params=(limit(DEFAULT_LIMIT, MAX_LIMIT), CURSOR),
        path_params={"id": id_of("user")},
        replies={200: Reply("a page of notifications", ref("NotificationPage"))},
        problems={400: "invalid-limit, invalid-cursor", 404: "notifications-not-found"},
        uses=frozenset({DATABASE}),
    ),
    notifications.saga_history: Operation(
        summary="A notification saga's history",
        tag="notifications",
        scopes=(SAGAS,),
        path_params={"id": id_of("saga (notification)")},
        replies={200: Reply("the saga's events in version order", ref("SagaHistory"))},
        problems={404: "saga-not-found"},
        uses=frozenset({DATABASE}),
    ),
    traces.get_trace: Operation(
        summary="A request's causal chain, from the log",
        tag="operations",
        description="The tree `nexus trace ID --json` prints, for a correlation, command or "
        "notification id. Reads the whole log: at most "
        f"{traces.TRACE_TIMEOUT_S:g} s, two at once per caller.",
        scopes=(READ_TRACES,),
        path_params={"id": Param("id", ID, "a correlation, command or notification id")},
        replies={200: Reply("the trace", ref("Trace"))},
        problems={404: "trace-not-found", 503: "trace-timeout"},
        uses=frozenset({LOG}),
    ),
}

OPERATIONS: dict[Callable[..., Any], Operation] = {**HEALTH, **READS}
