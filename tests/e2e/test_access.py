"""Who may act on and read what, against the whole stack: two ordinary users and an operator.

Mallory holds the default `nexus token` scopes, like alice; every cross-user write must be
refused and leave alice's rows unchanged, and every cross-user read must be a 404 or alice's
public profile.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import httpx
import pytest
from stack import api_client, prepared, running

from gateway.auth import DEFAULT_SCOPES
from infra.config.settings import Settings

WAIT = {"Prefer": "wait=15"}
OPERATOR = [*DEFAULT_SCOPES, "users:admin", "workspaces:admin"]


class People:
    def __init__(self, settings: Settings, stack: ExitStack) -> None:
        tag = uuid.uuid4().hex[:8]
        self.alice_id, self.mallory_id = f"alice-{tag}", f"mallory-{tag}"
        self.alice = stack.enter_context(api_client(settings, self.alice_id, list(DEFAULT_SCOPES)))
        self.mallory = stack.enter_context(
            api_client(settings, self.mallory_id, list(DEFAULT_SCOPES))
        )
        self.ops = stack.enter_context(api_client(settings, f"ops-{tag}", OPERATOR))


@pytest.fixture(scope="module")
def people(module_settings: Settings) -> Iterator[People]:
    settings = prepared(module_settings)
    with running(settings, ("command-processor", "projector", "gateway")), ExitStack() as stack:
        people = People(settings, stack)
        # No user_id: each registers itself.
        assert register(people.alice, "Alice")["aggregate_id"] == people.alice_id
        assert register(people.mallory, "Mallory")["aggregate_id"] == people.mallory_id
        yield people


def accepted(response: httpx.Response, status: int = 200) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    return body


def refused(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == code


def register(client: httpx.Client, name: str) -> dict[str, Any]:
    body = {"email": f"{name.lower()}@example.com", "name": name}
    return accepted(client.post("/api/v1/users", json=body, headers=WAIT), 201)


def read(client: httpx.Client, path: str, position: str) -> httpx.Response:
    return client.get(path, params={"after": position})


def test_strangers_change_nothing_and_see_nothing(people: People) -> None:
    alice, mallory, a = people.alice, people.mallory, people.alice_id
    made = accepted(alice.post("/api/v1/workspaces", json={"name": "Acme"}, headers=WAIT), 201)
    w = made["aggregate_id"]
    as_owner = {"user_id": people.mallory_id, "role": "owner"}
    hook = {"channels": [{"channel": "webhook", "address": "https://evil.example/x"}]}
    for response in (
        mallory.patch(f"/api/v1/users/{a}", json={"email": "m@evil.example"}, headers=WAIT),
        mallory.put(f"/api/v1/users/{a}/preferences", json=hook, headers=WAIT),
        mallory.post(f"/api/v1/users/{a}/deactivate", headers=WAIT),
        mallory.post(
            "/api/v1/users",
            json={"user_id": "not-hers", "email": "n@x.io", "name": "N"},
            headers=WAIT,
        ),  # fmt: skip
    ):
        refused(response, 403, "user.forbidden")
    refused(
        mallory.post("/api/v1/workspaces", json={"name": "Fake", "owner_id": a}, headers=WAIT),
        403,
        "workspace.forbidden",
    )
    for response in (
        mallory.post(f"/api/v1/workspaces/{w}/members", json=as_owner, headers=WAIT),  # fmt: skip
        mallory.patch(f"/api/v1/workspaces/{w}", json={"name": "Mine"}, headers=WAIT),
        mallory.post(f"/api/v1/workspaces/{w}/archive", headers=WAIT),
        mallory.delete(f"/api/v1/workspaces/{w}/members/{a}", headers=WAIT),
    ):
        refused(response, 404, "workspace.not_found")
    position = made["position"]
    refused(read(mallory, f"/api/v1/users/{a}", position), 404, "user-not-found")
    refused(read(mallory, f"/api/v1/workspaces/{w}", position), 404, "workspace-not-found")
    listed = accepted(mallory.get("/api/v1/users", params={"after": position, "limit": 500}))
    assert [u["user_id"] for u in listed["items"]] == [people.mallory_id]
    mine = accepted(read(alice, f"/api/v1/users/{a}", position))
    assert (mine["email"], mine["status"], mine["channels"], mine["version"]) == (
        "alice@example.com", "active", [], 1
    )  # fmt: skip
    workspace = accepted(read(alice, f"/api/v1/workspaces/{w}", position))
    assert (workspace["name"], workspace["status"], workspace["version"]) == ("Acme", "active", 2)
    assert [(m["user_id"], m["role"]) for m in workspace["members"]] == [(a, "owner")]


def test_co_members_see_a_public_profile_and_members_do_not_manage(people: People) -> None:
    alice, mallory, a, m = people.alice, people.mallory, people.alice_id, people.mallory_id
    made = accepted(alice.post("/api/v1/workspaces", json={"name": "Team"}, headers=WAIT), 201)
    w = made["aggregate_id"]
    added = accepted(
        alice.post(f"/api/v1/workspaces/{w}/members", json={"user_id": m}, headers=WAIT)
    )
    profile = accepted(read(mallory, f"/api/v1/users/{a}", added["position"]))
    assert profile == {
        "user_id": a,
        "name": "Alice",
        "status": "active",
        "version": profile["version"],
        "workspaces": [{"workspace_id": w, "role": "owner"}],
    }
    listed = accepted(mallory.get("/api/v1/users", params={"after": added["position"]}))
    shown = {u["user_id"]: u for u in listed["items"]}
    assert set(shown) == {a, m}
    assert "email" not in shown[a] and shown[m]["email"] == "mallory@example.com"
    assert accepted(read(mallory, f"/api/v1/workspaces/{w}", added["position"]))["name"] == "Team"
    refused(
        mallory.patch(f"/api/v1/workspaces/{w}", json={"name": "Ours"}, headers=WAIT),
        403,
        "workspace.forbidden",
    )
    refused(
        mallory.post(f"/api/v1/workspaces/{w}/members", json={"user_id": "x"}, headers=WAIT),
        403,
        "workspace.forbidden",
    )
    accepted(mallory.delete(f"/api/v1/workspaces/{w}/members/{m}", headers=WAIT))  # she leaves
    refused(
        alice.delete(f"/api/v1/workspaces/{w}/members/{a}", headers=WAIT),
        409,
        "workspace.cannot_remove_owner",
    )


def test_an_operator_acts_on_anyone(people: People) -> None:
    ops, a = people.ops, people.alice_id
    target = f"carol-{uuid.uuid4().hex[:6]}"
    body = {"user_id": target, "email": "carol@example.com", "name": "Carol"}
    accepted(ops.post("/api/v1/users", json=body, headers=WAIT), 201)
    renamed = accepted(ops.patch(f"/api/v1/users/{target}", json={"name": "C"}, headers=WAIT))
    assert accepted(read(ops, f"/api/v1/users/{target}", renamed["position"]))["email"] == (
        "carol@example.com"
    )
    made = ops.post("/api/v1/workspaces", json={"name": "For", "owner_id": target}, headers=WAIT)
    w = accepted(made, 201)["aggregate_id"]
    archived = accepted(ops.post(f"/api/v1/workspaces/{w}/archive", headers=WAIT))
    assert accepted(read(ops, f"/api/v1/workspaces/{w}", archived["position"]))["status"] == (
        "archived"
    )
    refused(people.alice.get(f"/api/v1/users/{target}"), 404, "user-not-found")
    assert a != target


def test_a_pathological_email_costs_nothing(people: People) -> None:
    mallory, m = people.mallory, people.mallory_id
    started = time.monotonic()
    huge = {"email": "a@" + "." * 100_000 + " ", "name": "M"}
    refused(mallory.patch(f"/api/v1/users/{m}", json=huge, headers=WAIT), 422, "invalid-body")
    # The longest email the schema lets through reaches the decider, which answers at once.
    longest = {"email": "a@" + "." * 251 + " "}
    refused(
        mallory.patch(f"/api/v1/users/{m}", json=longest, headers=WAIT), 422, "user.invalid_email"
    )
    next_one = mallory.patch(f"/api/v1/users/{m}", json={"name": "Mal"}, headers=WAIT)
    accepted(next_one)
    assert time.monotonic() - started < 2.0
