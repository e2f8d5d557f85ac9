"""The HTTP API against the whole stack (gateway, command processor, projector as processes)."""

from __future__ import annotations

import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import jwt
import pytest
from stack import prepared, running

from gateway.auth import DEFAULT_SCOPES, TokenVerifier
from infra.config.settings import Settings

WAIT = {"Prefer": "wait=15"}


@pytest.fixture(scope="module")
def stack(module_settings: Settings) -> Iterator[Settings]:
    settings = prepared(module_settings)
    with running(settings, ("command-processor", "projector", "gateway")):
        yield settings


@pytest.fixture(scope="module")
def api(stack: Settings) -> Iterator[httpx.Client]:
    verifier = TokenVerifier(stack.resolved_jwt_secret(), stack.jwt_issuer, stack.jwt_audience)
    # An operator: it registers and manages many users (cross-user rules: test_access.py).
    token = verifier.issue("alice", [*DEFAULT_SCOPES, "users:admin", "workspaces:admin"])
    with httpx.Client(
        base_url=f"http://127.0.0.1:{stack.gateway_port}",
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    ) as client:
        yield client


def new_user(api: httpx.Client, name: str = "Ada") -> dict[str, Any]:
    body = {"email": f"{uuid.uuid4().hex[:8]}@example.com", "name": name}
    response = api.post("/api/v1/users", json=body, headers=WAIT)
    assert response.status_code == 201, response.text
    return dict(response.json())


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status and body["code"] == code
    assert body["type"].endswith(code) and body["title"] and body["detail"]
    return body


def test_register_then_read_your_write(api: httpx.Client) -> None:
    created = new_user(api)
    assert created["version"] == 1
    user = api.get(
        f"/api/v1/users/{created['aggregate_id']}", params={"after": created["position"]}
    )
    assert user.status_code == 200
    assert user.headers["etag"] == '"1"'
    assert user.json()["name"] == "Ada" and user.json()["status"] == "active"


def test_if_match_guards_against_lost_updates(api: httpx.Client) -> None:
    user_id = new_user(api)["aggregate_id"]
    stale = api.patch(
        f"/api/v1/users/{user_id}", json={"name": "Bea"}, headers={**WAIT, "If-Match": '"0"'}
    )
    assert_problem(stale, 412, "version_conflict")
    fresh = api.patch(
        f"/api/v1/users/{user_id}", json={"name": "Bea"}, headers={**WAIT, "If-Match": '"1"'}
    )
    assert fresh.status_code == 200 and fresh.json()["version"] == 2
    assert fresh.headers["etag"] == '"2"'


def test_workspace_with_members_and_user_listing(api: httpx.Client) -> None:
    owner, member = new_user(api, "Owner")["aggregate_id"], new_user(api, "Member")["aggregate_id"]
    created = api.post("/api/v1/workspaces", json={"name": "Acme", "owner_id": owner}, headers=WAIT)
    assert created.status_code == 201, created.text
    workspace_id = created.json()["aggregate_id"]
    added = api.post(
        f"/api/v1/workspaces/{workspace_id}/members",
        json={"user_id": member, "role": "admin"},
        headers=WAIT,
    )
    assert added.status_code == 200, added.text
    workspace = api.get(
        f"/api/v1/workspaces/{workspace_id}", params={"after": added.json()["position"]}
    )
    members = {m["user_id"]: m["role"] for m in workspace.json()["members"]}
    assert members == {owner: "owner", member: "admin"}
    listed = api.get("/api/v1/users", params={"workspace_id": workspace_id})
    assert sorted(u["user_id"] for u in listed.json()["items"]) == sorted([owner, member])
    removed = api.delete(f"/api/v1/workspaces/{workspace_id}/members/{member}", headers=WAIT)
    assert removed.status_code == 200 and removed.json()["version"] == 4


def test_without_wait_the_answer_is_202_and_the_outcome_comes_later(api: httpx.Client) -> None:
    accepted = api.post("/api/v1/users", json={"email": "later@example.com", "name": "Later"})
    assert accepted.status_code == 202
    command_id = accepted.json()["command_id"]
    assert accepted.headers["location"] == f"/api/v1/commands/{command_id}"
    deadline = time.monotonic() + 15
    while (outcome := api.get(f"/api/v1/commands/{command_id}")).status_code == 404:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert outcome.json()["status"] == "accepted"
    assert outcome.json()["aggregate_id"] == accepted.json()["aggregate_id"]


def test_business_rule_violations(api: httpx.Client) -> None:
    user_id = new_user(api)["aggregate_id"]
    again = api.post(
        "/api/v1/users", json={"user_id": user_id, "email": "x@y.co", "name": "X"}, headers=WAIT
    )
    assert_problem(again, 409, "user.already_registered")
    bad_email = api.post("/api/v1/users", json={"email": "nope", "name": "X"}, headers=WAIT)
    assert_problem(bad_email, 422, "user.invalid_email")
    missing = api.patch("/api/v1/users/ghost", json={"name": "X"}, headers=WAIT)
    assert_problem(missing, 404, "user.not_found")


def test_malformed_invalid_and_oversized_bodies(api: httpx.Client) -> None:
    malformed = api.post(
        "/api/v1/users", content=b'{"email": ', headers={"Content-Type": "application/json"}
    )
    assert_problem(malformed, 400, "malformed-json")
    not_utf8 = api.post(
        "/api/v1/users", content=b'{"name": "\xff"}', headers={"Content-Type": "application/json"}
    )
    assert_problem(not_utf8, 400, "malformed-json")
    invalid = api.post("/api/v1/users", json={"email": 5, "nmae": "X"})
    errors = {
        e["pointer"]: e["detail"] for e in assert_problem(invalid, 422, "invalid-body")["errors"]
    }
    assert errors == {
        "/email": "must be a string",
        "/name": "is required",
        "/nmae": "unknown field",
    }
    prefs = api.put(
        "/api/v1/users/u-1/preferences", json={"channels": [{"channel": "fax", "address": "1"}]}
    )
    pointers = [e["pointer"] for e in assert_problem(prefs, 422, "invalid-body")["errors"]]
    assert pointers == ["/channels/0/channel"]
    huge = api.post("/api/v1/users", json={"email": "a@b.co", "name": "x" * (1024 * 1024)})
    assert_problem(huge, 413, "body-too-large")


def test_tokens(api: httpx.Client, stack: Settings) -> None:
    url = "/api/v1/users/anyone"
    assert_problem(httpx.get(api.base_url.join(url)), 401, "missing-token")
    now = int(time.time())
    claims = {"sub": "a", "iss": stack.jwt_issuer, "aud": stack.jwt_audience, "exp": now + 60}
    secret = stack.resolved_jwt_secret()
    cases = {
        "expired-token": jwt.encode({**claims, "exp": now - 60}, secret, "HS256"),
        "invalid-token": jwt.encode({**claims, "aud": "someone-else"}, secret, "HS256"),
    }
    for code, token in cases.items():
        response = httpx.get(api.base_url.join(url), headers={"Authorization": f"Bearer {token}"})
        assert_problem(response, 401, code)
    unsigned = jwt.encode(claims, None, "none")
    response = httpx.get(api.base_url.join(url), headers={"Authorization": f"Bearer {unsigned}"})
    assert_problem(response, 401, "invalid-token")
    reader = TokenVerifier(secret, stack.jwt_issuer, stack.jwt_audience).issue("r", ["users:read"])
    response = httpx.post(
        api.base_url.join("/api/v1/users"),
        json={"email": "a@b.co", "name": "A"},
        headers={"Authorization": f"Bearer {reader}"},
    )
    assert_problem(response, 403, "insufficient-scope")


def test_unknown_resources_and_health(api: httpx.Client) -> None:
    assert_problem(api.get("/api/v1/users/nobody-here"), 404, "user-not-found")
    assert_problem(api.get("/api/v1/workspaces/nothing"), 404, "workspace-not-found")
    assert api.get("/healthz").status_code == 200
    ready = api.get("/readyz")
    assert ready.status_code == 200 and all(ready.json()["checks"].values())
    assert "nexus_http_requests_total" in api.get("/metrics").text


def test_every_metrics_endpoint_passes_promtool(api: httpx.Client, stack: Settings) -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is installed by `make test` (nexus install --test-tools)"
    ports = (stack.gateway_port, stack.command_processor_health_port, stack.projector_health_port)
    for port in ports:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics").text
        check = subprocess.run(
            [promtool, "check", "metrics"], input=text.encode(), capture_output=True, timeout=30
        )
        assert check.returncode == 0, check.stdout + check.stderr
    assert "nexus_commands_total" in httpx.get(f"http://127.0.0.1:{ports[1]}/metrics").text


def test_the_largest_command_the_schema_allows_is_stored_and_decided(api: httpx.Client) -> None:
    user_id = new_user(api)["aggregate_id"]
    url = "https://example.com/" + "x" * (2048 - 20)
    body = {"channels": [{"channel": "push", "address": "x" * 2048}]}
    body["channels"] += [{"channel": c, "address": url} for c in ("webhook", "slack", "discord")]
    response = api.put(f"/api/v1/users/{user_id}/preferences", json=body, headers=WAIT)
    assert response.status_code == 200, response.text[:300]
    assert response.json()["version"] == 2
    body["channels"][0]["address"] += "x"
    response = api.put(f"/api/v1/users/{user_id}/preferences", json=body, headers=WAIT)
    assert response.status_code == 422
    assert response.json()["errors"] == [
        {"pointer": "/channels/0/address", "detail": "must be at most 2048 characters"}
    ]
