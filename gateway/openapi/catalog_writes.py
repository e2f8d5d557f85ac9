"""What notifications, ingestion, events over HTTP and the analytics routes declare.

Event bodies come from the Avro schemas: `POST /api/v1/events` takes one variant per event
type a service may publish (schemas/events less the platform's own, sagas.event_owners).
Routes whose endpoints are closures (the dashboard page) are keyed by (method, path).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aggregates.channels import CHANNELS
from gateway import analytics, event_input, events, ingest, notifications
from gateway.auth import PUBLISH_EVENTS
from gateway.openapi.model import DATABASE, LOG, Body, JsonSchema, Operation, Param, Reply
from gateway.openapi.schema_kit import ID, TIME, obj, ref
from projections.analytics.rollups import GRANULARITIES
from sagas.event_owners import owner_of
from sagas.notification.request import MAX_IDEMPOTENCY_KEY
from schemas.json_schema import json_schema
from schemas.registry import default_registry
from schemas.tracking import MAX_ID, MAX_TYPE, MAX_USER_ID
from schemas.tracking_aliases import ALIASES

NDJSON = ingest.NDJSON
GRANULARITY = Param("granularity", {"enum": list(GRANULARITIES), "default": "minute"},
                    "window size")  # fmt: skip
RANGE = (
    Param("from", TIME, "start of the range (default: an hour, or a day, before `to`)"),
    Param("to", TIME, "end of the range, exclusive (default: now)"),
    GRANULARITY,
)
RANGE_PROBLEMS = {400: "invalid-range, invalid-granularity, range-too-large"}


def _notification_request() -> JsonSchema:
    text = {"type": "string", "minLength": 1}
    body = obj(
        {
            "user_id": text | {"maxLength": notifications.MAX_ID},
            "template": {"type": "string", "examples": ["welcome"]},
            "data": {"type": "object", "description": "the template's variables"},
        },
        {
            "channels": {"type": "array", "minItems": 1, "items": {"enum": list(CHANNELS)}},
            "idempotency_key": text | {"maxLength": MAX_IDEMPOTENCY_KEY},
        },
    )
    return _aliased(body, notifications.ALIASES)


def _tracked_item() -> JsonSchema:
    text = {"type": "string", "minLength": 1}
    item = obj(
        {"type": text | {"maxLength": MAX_TYPE, "examples": ["page.view"]}},
        {
            "id": text | {"maxLength": MAX_ID, "description": "kept as the event id"},
            "user_id": text | {"maxLength": MAX_USER_ID},
            "anonymous_id": text | {"maxLength": MAX_USER_ID},
            "timestamp": {
                "type": ["string", "integer"],
                "description": "ISO-8601 with a timezone, or epoch ms; default: receipt time",
            },
            "data": {"type": "object", "description": "checked against the type's plan"},
        },
    )
    return _aliased(item, ALIASES)


def _aliased(body: JsonSchema, aliases: dict[str, str]) -> JsonSchema:
    """`body` also taking each alias for its field, one name or the other being required."""
    properties = dict(body["properties"])
    required = list(body.get("required", []))
    either = []
    for alias, name in aliases.items():
        properties[alias] = properties[name] | {"description": f"another name of {name}"}
        if name in required:
            required.remove(name)
            either.append({"oneOf": [{"required": [name]}, {"required": [alias]}]})
    out = {k: v for k, v in body.items() if k != "required"} | {"properties": properties}
    return (
        out | ({"required": required} if required else {}) | ({"allOf": either} if either else {})
    )


def _published_event(event_type: str) -> JsonSchema:
    parsed = default_registry().latest(event_type).parsed
    data = json_schema(next(f["type"] for f in parsed["fields"] if f["name"] == "data"))
    return obj(
        {"type": {"const": event_type}, "aggregate_id": ID, "data": data},
        {
            "event_id": ID | {"description": "idempotency: the same id is published once"},
            "occurred_at": TIME | {"maxLength": event_input.MAX_TIME_CHARS},
            "causation_id": ID,
        },
    )


def _publishable() -> list[str]:
    return [name for name in default_registry().names("events") if owner_of(name) is None]


# One Server-Sent Event, as parsed: `retry:` first, then `event: dashboard` with the figures
# as its JSON data (heartbeats are comments, which carry no event).
SSE_EVENT = {
    "type": "object",
    "properties": {
        "event": {"const": "dashboard"},
        "data": {"type": "string", "contentMediaType": "application/json",
                 "contentSchema": ref("Dashboard")},
        "retry": {"type": "integer"},
        "id": {"type": "string"},
    },
}  # fmt: skip
INGESTED = obj(
    {"accepted": {"type": "integer"}, "rejected": {"type": "integer"}},
    {
        "event_ids": {"type": "array", "items": {"type": "string"}},
        "errors": {"type": "array", "items": {"type": "object"}},
    },
)
INGEST_PROBLEMS = {
    400: "malformed-json",
    413: "body-too-large, too-many-events, over-rate-limit",
    422: "invalid-events (none accepted, each error named), empty-batch, invalid-body",
}

WRITES: dict[Callable[..., Any], Operation] = {
    notifications.submit_notification: Operation(
        summary="Notify a user",
        tag="notifications",
        description=f"For yourself with {notifications.WRITE}, for anyone with "
        f"{notifications.SEND} (which critical templates always need). 202 once the request "
        "is in Kafka; a repeated idempotency key whose saga started answers 200.",
        scopes=(notifications.WRITE, notifications.SEND),
        body=Body(
            _notification_request(),
            example={
                "user_id": "ada",
                "template": "welcome",
                "data": {"user": {"name": "Ada", "email": "ada@example.com"}},
            },
        ),
        replies={
            202: Reply("accepted", ref("NotificationAccepted"), headers=("Location",)),
            200: Reply(
                "a key seen before: its saga, nothing published",
                ref("NotificationAccepted"),
                headers=("Location", "Idempotent-Replayed"),
            ),
        },
        problems={404: "user-not-found", 422: "invalid-body, a pointer per bad or missing field"},
        uses=frozenset({DATABASE, LOG}),
    ),
    ingest.ingest_event: Operation(
        summary="Ingest one analytics event",
        tag="analytics",
        scopes=(ingest.WRITE,),
        body=Body(
            _tracked_item(),
            example={"type": "page.view", "userId": "user123", "data": {"page": "/dashboard"}},
        ),  # fmt: skip
        replies={202: Reply("accepted; Kafka holds it", INGESTED)},
        problems=INGEST_PROBLEMS,
        uses=frozenset({LOG}),
    ),
    ingest.ingest_batch: Operation(
        summary="Ingest a batch of analytics events",
        tag="analytics",
        description=f"A JSON array, or NDJSON ({NDJSON}), of at most "
        f"{ingest.MAX_BATCH_EVENTS} events; 202 when at least one is accepted.",
        scopes=(ingest.WRITE,),
        body=Body(
            {
                "type": "array",
                "minItems": 1,
                "maxItems": ingest.MAX_BATCH_EVENTS,
                "items": _tracked_item(),
            },  # fmt: skip
            media=("application/json", NDJSON),
            example=[{"event": "feature.used", "userId": "ada", "data": {"feature": "export"}}],
        ),
        replies={202: Reply("some accepted; Kafka holds them and the refused ones", INGESTED)},
        problems=INGEST_PROBLEMS,
        uses=frozenset({LOG}),
    ),
    events.publish_events: Operation(
        summary="Publish domain events",
        tag="events",
        description="Events of a service's own types, all or none; 202 once Kafka holds "
        "every one. Types the platform writes itself answer 403 event-type-owned.",
        scopes=(PUBLISH_EVENTS,),
        body=Body(
            obj(
                {
                    "events": {
                        "type": "array",
                        "minItems": 1,
                        "maxItems": event_input.MAX_EVENTS,
                        "items": {"anyOf": [_published_event(t) for t in _publishable()]},
                    }
                }
            ),
            example={
                "events": [
                    {
                        "type": "activity.recorded",
                        "aggregate_id": "subject-1",
                        "data": {"kind": "login", "subject_id": "s1", "attributes": {}},
                    }
                ]
            },
        ),  # fmt: skip
        replies={
            202: Reply("in Kafka", ref("EventsPublished")),
        },
        problems={
            413: "too-many-events",
            422: "invalid-events, invalid-body, empty-batch",
            403: "event-type-owned",
            409: "event-id-conflict: an event_id published before for another event",
        },  # fmt: skip
        uses=frozenset({DATABASE, LOG}),
    ),
    analytics.get_dashboard: Operation(
        summary="The analytics dashboard's figures",
        tag="analytics",
        scopes=(analytics.READ,),
        params=RANGE,
        replies={200: Reply("figures of the range", ref("Dashboard"))},
        problems=RANGE_PROBLEMS,
        uses=frozenset({DATABASE}),
    ),
    analytics.get_event_series: Operation(
        summary="One tracked event type's series",
        tag="analytics",
        scopes=(analytics.READ,),
        params=RANGE,
        path_params={"type": Param("type", ID, "a tracking-plan type, such as page.view")},
        replies={200: Reply("its windows", ref("EventSeries"))},
        problems={**RANGE_PROBLEMS, 404: "event-type-not-found"},
        uses=frozenset({DATABASE}),
    ),
    analytics.stream_dashboard: Operation(
        summary="The dashboard as Server-Sent Events",
        tag="analytics",
        description="`event: dashboard` whenever the figures change, heartbeats otherwise; "
        f"ends after {analytics.STREAM_LIFETIME_S:g} s. EventSource cannot send headers, "
        "so the token may come as `access_token`.",
        scopes=(analytics.READ,),
        params=(GRANULARITY, Param("access_token", {"type": "string"}, "a JWT, for EventSource")),
        replies={
            200: Reply(
                "the stream; the schema is that of each event", SSE_EVENT, "text/event-stream"
            )
        },  # fmt: skip
        problems={400: "invalid-granularity"},
        uses=frozenset({DATABASE}),
    ),
}

# Their endpoints are a closure and a Mount: keyed by (method, path).
PAGES: dict[Any, Operation] = {
    ("GET", "/dashboard"): Operation(
        summary="The analytics dashboard page",
        tag="analytics",
        description="Open it as `/dashboard#token=<JWT with analytics:read>`; the fragment "
        "never reaches the server.",
        replies={
            200: Reply(
                "the page", {"type": "string"}, "text/html", headers=("Content-Security-Policy",)
            )
        },  # fmt: skip
    ),
    ("GET", "/static/{path}"): Operation(
        summary="Static files of the pages (and the vendored libraries, with their licenses)",
        tag="documentation",
        path_params={
            "path": Param(
                "path",
                {"type": "string", "examples": ["dashboard.js"]},
                "a file under gateway/web/static",
            )
        },  # fmt: skip
        replies={200: Reply("the file", None)},
        problems={404: "http-404: no such file"},
    ),
}
