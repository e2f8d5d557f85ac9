"""A 200/201 from `Prefer: wait` is visible to the very next request (issue 12, part 3).

Real processes (command processor, projector, gateway), one stack for the module, and no
sleep anywhere between a command's answer and the request that relies on it. The next
requests are the routes that consult read models before acting: the notification route's
user check, and the workspace and user visibility checks of a new member.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest
from stack import prepared, running

from gateway.auth import DEFAULT_SCOPES, TokenVerifier
from infra.config.settings import Settings

ROUNDS = 200
WAIT = {"Prefer": "wait=10"}


@pytest.fixture(scope="module")
def stack(module_settings: Settings) -> Iterator[Settings]:
    settings = prepared(module_settings)
    with running(settings, ("command-processor", "projector", "gateway")):
        yield settings


class Gateway:
    """The gateway, called with a fresh token per subject (the default scopes)."""

    def __init__(self, settings: Settings) -> None:
        secret = settings.resolved_jwt_secret()
        self.verifier = TokenVerifier(secret, settings.jwt_issuer, settings.jwt_audience)
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{settings.gateway_port}", timeout=30)

    def as_(self, subject: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.verifier.issue(subject, list(DEFAULT_SCOPES))}"}

    def register(self, subject: str) -> httpx.Response:
        body = {"email": f"{subject}@example.com", "name": subject.title()}
        return self.http.post("/api/v1/users", json=body, headers={**self.as_(subject), **WAIT})


@pytest.fixture(scope="module")
def gateway(stack: Settings) -> Iterator[Gateway]:
    client = Gateway(stack)
    yield client
    client.http.close()


def welcome(user_id: str) -> dict[str, object]:
    data = {"user": {"name": "Ada", "email": f"{user_id}@example.com"}}
    return {"user_id": user_id, "template": "welcome", "data": data}


def test_register_then_notify_at_once_200_times(gateway: Gateway) -> None:
    for _ in range(ROUNDS):
        user_id = f"u{uuid.uuid4().hex[:12]}"
        registered = gateway.register(user_id)
        assert registered.status_code == 201, registered.text
        asked = gateway.http.post(
            "/api/v1/notifications", json=welcome(user_id), headers=gateway.as_(user_id)
        )
        assert asked.status_code == 202, asked.text


def test_create_workspace_then_add_member_200_times(gateway: Gateway) -> None:
    owner, member = f"o{uuid.uuid4().hex[:12]}", f"m{uuid.uuid4().hex[:12]}"
    assert gateway.register(owner).status_code == 201
    assert gateway.register(member).status_code == 201
    as_owner, as_member = gateway.as_(owner), gateway.as_(member)
    for n in range(ROUNDS):
        created = gateway.http.post(
            "/api/v1/workspaces", json={"name": f"W{n}"}, headers={**as_owner, **WAIT}
        )
        assert created.status_code == 201, created.text
        workspace = created.json()["aggregate_id"]
        added = gateway.http.post(
            f"/api/v1/workspaces/{workspace}/members",
            json={"user_id": member, "role": "member"},
            headers={**as_owner, **WAIT},
        )
        assert added.status_code == 200, added.text
        # The member's visibility checks read the memberships at once, without ?after.
        seen = gateway.http.get(f"/api/v1/workspaces/{workspace}", headers=as_member)
        assert seen.status_code == 200, seen.text
        assert {m["user_id"] for m in seen.json()["members"]} == {owner, member}
    # The owner sees the member's public profile through every workspace they share.
    profile = gateway.http.get(f"/api/v1/users/{member}", headers=as_owner)
    assert profile.status_code == 200, profile.text
    assert len(profile.json()["workspaces"]) == ROUNDS


def test_a_wait_that_runs_out_before_the_read_models_answers_202(settings: Settings) -> None:
    """No projector: the command is decided, but no read model shows it, so no 201."""
    ready = prepared(settings)
    with running(ready, ("command-processor", "gateway")):
        client = Gateway(ready)
        answer = client.register("lagging")
        assert answer.status_code == 202, answer.text
        assert answer.json()["status"] == "pending"
        command = client.http.get(answer.headers["Location"], headers=client.as_("lagging"))
        assert command.status_code == 200, command.text
        assert command.json()["status"] == "accepted"
        client.http.close()
