"""Contract test: schemathesis drives every operation of the live gateway's own OpenAPI
document, and every answer must keep to it.

The gateway, command processor and projector run as real processes on a real Kafka and
PostgreSQL; the caller holds every scope (an operator), so answers are decided by the input,
not by a missing scope. A user, a workspace and a notification are made first, so that the
examples in the document (`ada`, `engines`) reach rows that exist. Checks: no 5xx, each
status code documented for its operation, each body matching its documented schema and
media type, each documented header matching its schema. Inputs are drawn both within the
document (positive) and outside it (negative: every such request must get a documented
4xx, never a 5xx). Bounded by MAX_EXAMPLES per operation and mode (under two minutes on
two cores).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from schemathesis import Case
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from stack import api_client, prepared, running

from gateway.auth import DEFAULT_SCOPES, OPERATOR_SCOPES, TokenVerifier
from gateway.ingest import NDJSON
from infra.config.settings import Settings

MAX_EXAMPLES = 25
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
OPERATOR = "contract-operator"
EVERY_SCOPE = [*DEFAULT_SCOPES, *OPERATOR_SCOPES]
COMMAND_IDS: list[str] = []  # of the seeded commands


@pytest.fixture(scope="module")
def stack(module_settings: Settings) -> Iterator[Settings]:
    # A made-up `?after=` position is only judged once its wait ran out: keep that short.
    settings = prepared(module_settings, read_your_writes_timeout_s=0.5)
    with running(settings, ("command-processor", "projector", "gateway")):
        with api_client(settings, OPERATOR, EVERY_SCOPE) as api:
            seed(api)
        yield settings


def seed(api: httpx.Client) -> None:
    """The rows the document's examples name."""
    wait = {"Prefer": "wait=15"}
    for user_id, name in (("ada", "Ada"), ("charles", "Charles")):
        body = {"user_id": user_id, "email": f"{user_id}@example.com", "name": name}
        assert api.post("/api/v1/users", json=body, headers=wait).status_code == 201
    channels = {"channels": [{"channel": "email", "address": "ada@example.com"}]}
    preferences = api.put("/api/v1/users/ada/preferences", json=channels, headers=wait)
    assert preferences.status_code == 200, preferences.text
    workspace = {"workspace_id": "engines", "name": "Engines", "owner_id": "ada"}
    assert api.post("/api/v1/workspaces", json=workspace, headers=wait).status_code == 201
    member = {"user_id": "charles", "role": "member"}
    added = api.post("/api/v1/workspaces/engines/members", json=member, headers=wait)
    assert added.status_code == 200, added.text
    COMMAND_IDS.append(added.json()["command_id"])


@pytest.fixture(scope="module")
def api_schema(stack: Settings) -> schemathesis.BaseSchema:
    verifier = TokenVerifier(stack.resolved_jwt_secret(), stack.jwt_issuer, stack.jwt_audience)
    token = verifier.issue(OPERATOR, EVERY_SCOPE)
    config = schemathesis.Config.from_dict(
        {
            "headers": {"Authorization": f"Bearer {token}"},
            "generation": {"max-examples": MAX_EXAMPLES, "mode": "all"},
            "max-stream-events": 1,  # the first dashboard; more come only on change
            "request-timeout": 40,
        }
    )
    url = f"http://127.0.0.1:{stack.gateway_port}/api/openapi.json"
    return schemathesis.openapi.from_url(url, config=config)


def test_answers_about_existing_rows_keep_to_the_document(
    stack: Settings, api_schema: schemathesis.BaseSchema
) -> None:
    """Generated ids seldom name a row: read the seeded ones, as an operator (full records)
    and as a member of the same workspace (public profiles), and check each answer. It runs
    before the generated requests, which change those rows (charles may leave `engines`)."""
    reads = [
        (EVERY_SCOPE, "/api/v1/users/{id}", "/api/v1/users/ada"),
        (EVERY_SCOPE, "/api/v1/users", "/api/v1/users?workspace_id=engines"),
        (EVERY_SCOPE, "/api/v1/workspaces/{id}", "/api/v1/workspaces/engines"),
        (EVERY_SCOPE, "/api/v1/commands/{id}", f"/api/v1/commands/{COMMAND_IDS[0]}"),
        (DEFAULT_SCOPES, "/api/v1/users/{id}", "/api/v1/users/ada"),
        (DEFAULT_SCOPES, "/api/v1/users", "/api/v1/users"),
    ]
    for scopes, template, url in reads:
        with api_client(stack, "charles" if scopes is DEFAULT_SCOPES else OPERATOR,
                        list(scopes)) as api:  # fmt: skip
            answer = api.get(url)
        assert answer.status_code == 200, (url, answer.text)
        api_schema[template]["GET"].validate_response(answer)
    public = answer.json()["items"]
    assert {u["user_id"] for u in public} == {"ada", "charles"}
    assert "email" not in next(u for u in public if u["user_id"] == "ada")


def test_a_position_naming_no_event_is_the_clients_mistake(stack: Settings) -> None:
    """`?after=` a real position answers at once; one the log has no event at (past the end,
    a partition the topic lacks, the transaction marker after an event) is 400, not 503."""
    with api_client(stack, OPERATOR, EVERY_SCOPE) as api:
        body = {"user_id": "grace", "email": "grace@example.com", "name": "Grace"}
        registered = api.post("/api/v1/users", json=body, headers={"Prefer": "wait=15"})
        assert registered.status_code == 201, registered.text
        partition, offset = map(int, registered.json()["position"].split("-"))
        assert api.get(f"/api/v1/users/grace?after={partition}-{offset}").status_code == 200
        for made_up in (f"{partition}-{offset + 1}", f"{partition}-{10**15}", "999-0"):
            answer = api.get(f"/api/v1/users/grace?after={made_up}")
            assert answer.status_code == 400, (made_up, answer.text)
            assert answer.json()["code"] == "position-not-in-log"


@schemathesis.serializer(NDJSON)
def ndjson(context: schemathesis.SerializationContext, value: Any) -> bytes:
    """A batch as NDJSON: one event per line (the document describes the lines as an array)."""
    items = value if isinstance(value, list) else [value]
    return "\n".join(json.dumps(item) for item in items).encode()


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
def test_every_operation_keeps_to_the_document(case: Case) -> None:
    case.call_and_validate(checks=CHECKS)
