"""`POST /api/v1/events`: services publish domain events of their own aggregates over HTTP.

For producers not written in Python, what `EventBus.publish_many` is for those that are.
It needs the scope `events:publish`. Every event's `actor` is the token's subject, whatever
the body says, so the log tells which service published what. The body and its checks are in
gateway.event_input; publishing once per `event_id` in gateway.publishing. The answer, 202
`{events: [{event_id, position}]}`, comes only once Kafka holds every event of the request;
a request whose events were all published before gets the same answer, with
`Idempotent-Replayed: true`, and writes nothing.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.auth import PUBLISH_EVENTS
from gateway.body import read_json
from gateway.event_input import checked_events
from gateway.notifications import REPLAYED
from gateway.services import Services


async def publish_events(request: Request) -> Response:
    services: Services = request.state.services
    principal = services.verifier.principal(request.headers.get("authorization"))
    principal.require(PUBLISH_EVENTS)
    body = await read_json(request, services.settings.max_body_bytes)
    events = checked_events(body, services.registry)
    await services.rate_limits.charge_total(request, len(events))  # one unit per event
    published = await services.event_publisher.publish(
        events, principal.subject, request.state.correlation_id
    )
    answer = {"events": [{"event_id": i, "position": p} for i, p in published.positions]}
    return JSONResponse(answer, 202, headers={REPLAYED: "true"} if published.replayed else {})


def event_routes() -> list[Route]:
    return [Route("/api/v1/events", publish_events, methods=["POST"])]
