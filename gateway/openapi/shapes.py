"""The JSON Schemas of what the gateway answers, as OpenAPI components, and its headers.

Rows read from the projections are described from the projections' Table declarations
(gateway.openapi.schema_kit.row); what a row's jsonb column holds comes from the command
schema that fills it. Answers built by the endpoints themselves are written out here (and
in gateway.openapi.reports), once, and referred to by name (`ref("User")`).
"""

from __future__ import annotations

from gateway.dispatch import MAX_WAIT_SECONDS
from gateway.openapi.model import JsonSchema
from gateway.openapi.reports import REPORTS
from gateway.openapi.schema_kit import ID, POSITION, TIME, command_data, obj, ref, row
from gateway.problems import PROBLEM_BASE
from gateway.visibility import PUBLIC_USER_FIELDS
from projections.command_outcomes import COMMAND_OUTCOMES
from projections.memberships import MEMBERSHIPS
from projections.notifications import NOTIFICATIONS, SAGA_EVENTS
from projections.users import USERS
from projections.workspaces import WORKSPACES


def _problem() -> JsonSchema:
    pointer = obj({"pointer": {"type": "string"}, "detail": {"type": "string"}},
                  {"index": {"type": "integer"}})  # fmt: skip
    problem = obj(
        {
            "type": {
                "type": "string",
                "format": "uri",
                "examples": [PROBLEM_BASE + "invalid-body"],
            },
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
            "instance": {"type": "string"},
            "code": {"type": "string", "description": "stable, also the end of `type`"},
        },
        {"errors": {"type": "array", "items": pointer}},
    )
    problem["description"] = "RFC 9457 problem details; some problems add members of their own."
    problem["additionalProperties"] = True
    return problem


def _users() -> dict[str, JsonSchema]:
    membership = row(MEMBERSHIPS, ("workspace_id", "role"))
    user = row(USERS, channels={"type": "array", "items": ref("ChannelAddress")},
               quiet_hours=ref("QuietHours"))  # fmt: skip
    public = row(USERS, PUBLIC_USER_FIELDS)
    return {
        "User": _with(user, workspaces={"type": "array", "items": membership}),
        "PublicUser": _with(public, workspaces={"type": "array", "items": membership}),
        "UserPage": obj(
            {
                "items": {"type": "array", "items": {"anyOf": [user, public]}},
                "next_cursor": {"type": ["string", "null"]},
            }
        ),
        "Workspace": _with(
            row(WORKSPACES),
            members={"type": "array", "items": row(MEMBERSHIPS, ("user_id", "role", "added_at"))},
        ),
    }


def _with(schema: JsonSchema, **required: JsonSchema) -> JsonSchema:
    return schema | {
        "properties": {**schema["properties"], **required},
        "required": [*schema["required"], *required],
    }


def _commands() -> dict[str, JsonSchema]:
    pending = {"type": "string", "const": "pending"}
    accepted = {"type": "string", "const": "accepted"}
    command_id = {"type": "string", "format": "uuid"}
    return {
        "CommandPending": obj({"command_id": command_id, "aggregate_id": ID, "status": pending}),
        "CommandAccepted": obj(
            {
                "command_id": command_id,
                "aggregate_id": ID,
                "status": accepted,
                "version": {"type": "integer", "minimum": 1},
                # Null when the command changed nothing (no event, so no position).
                "position": {"anyOf": [POSITION, {"type": "null"}]},
            }
        ),
        "CommandOutcome": row(COMMAND_OUTCOMES, event_ids={"type": "array", "items": ID}),
    }


def _notifications() -> dict[str, JsonSchema]:
    text_or_null = {"type": ["string", "null"]}
    attempt = obj(
        {
            "ledger_key": {"type": "string"},
            "channel": {"type": "string"},
            "attempt": {"type": "integer"},
            "status": {"enum": ["sending", "delivered", "failed", "in_doubt"]},
            "provider_response": text_or_null,
            "error": text_or_null,
            "latency_ms": {"type": ["number", "null"]},
            "started_at": TIME,
            "finished_at": {"anyOf": [TIME, {"type": "null"}]},
        }
    )
    notification = row(NOTIFICATIONS)
    return {
        "Notification": notification,
        "NotificationDetail": _with(notification, attempts={"type": "array", "items": attempt}),
        "NotificationPage": obj(
            {"items": {"type": "array", "items": notification}, "next_cursor": text_or_null}
        ),
        "NotificationAccepted": obj(
            {
                "notification_id": {"type": "string"},
                "status": {"type": "string"},
                "status_url": {"type": "string"},
            }
        ),
        "SagaHistory": obj(
            {
                "saga_id": {"type": "string"},
                "events": {"type": "array", "items": row(SAGA_EVENTS, _SAGA_EVENT_COLUMNS)},
            }
        ),
    }


_SAGA_EVENT_COLUMNS = ("version", "event_id", "type", "occurred_at", "actor", "correlation_id",
                       "causation_id", "data")  # fmt: skip


def _health() -> dict[str, JsonSchema]:
    return {
        "Liveness": obj(
            {
                "status": {"enum": ["ok", "failing"]},
                "problems": {"type": "array", "items": {"type": "string"}},
            }
        ),
        "Readiness": obj(
            {
                "status": {"enum": ["ready", "not ready"]},
                "checks": {"type": "object", "additionalProperties": {"type": "boolean"}},
            }
        ),
    }


_PREFERENCES = command_data("SetNotificationPreferences")["properties"]
SCHEMAS: dict[str, JsonSchema] = {
    "Problem": _problem(),
    "Id": ID,
    "Position": POSITION,
    # What users' jsonb columns hold: what SetNotificationPreferences stored there.
    "ChannelAddress": _PREFERENCES["channels"]["items"],
    "QuietHours": _PREFERENCES["quiet_hours"],
}
SCHEMAS.update({**_users(), **_commands(), **_notifications(), **_health(), **REPORTS})

# Response headers, by name; operations list the ones they set.
HEADERS: dict[str, JsonSchema] = {
    "ETag": {"description": 'the version, as "3"', "schema": {"type": "string"}},
    "Location": {
        "description": "where the resource or its status is",
        "schema": {"type": "string"},
    },
    "Retry-After": {"description": "seconds to wait", "schema": {"type": "string"}},
    "Preference-Applied": {
        "description": f"the `Prefer: wait` honoured (at most {MAX_WAIT_SECONDS:g} s)",
        "schema": {"type": "string"},
    },
    "Idempotent-Replayed": {
        "description": "`true` when answering a request seen before; nothing was written",
        "schema": {"type": "string"},
    },
    "RateLimit-Policy": {
        "description": "draft-ietf-httpapi-ratelimit-headers: the route class's policy",
        "schema": {"type": "string"},
    },
    "RateLimit": {"description": "what is left of the policy", "schema": {"type": "string"}},
    "X-Correlation-Id": {
        "description": "the request's correlation id (the client's, or a new one)",
        "required": True,  # every answer has it (gateway.middleware.RequestContext)
        "schema": {"type": "string"},
    },
    "Content-Security-Policy": {
        "description": "pages load nothing from elsewhere",
        "schema": {"type": "string"},
    },  # fmt: skip
}
