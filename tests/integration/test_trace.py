"""`nexus trace` and `GET /api/v1/traces/{id}` against a whole stack of real processes.

The workflows file here asks, on every user.registered, for a `welcome` notification to the
operations user (NEXUS_OPS_USER_ID), whose only channel is a webhook to the test's sink. So
registering a user runs command → user.registered → workflow request → saga → webhook
delivery, all from one HTTP request, and its trace must show that chain in causal order,
each record with the process that wrote it.
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from stack import NEXUS, ServiceProcess, api_client, prepared, running
from webhook_sink import SinkLog

from gateway.auth import DEFAULT_SCOPES, READ_TRACES
from infra.config.settings import Settings
from infra.local.processes import free_port
from infra.local.service_env import environment, with_free_ports
from projections.causal_chain import trace, trace_json
from streams.causal_log import read_log

SERVICES = ("command-processor", "projector", "workflows", "notifier", "gateway")
WAIT = {"Prefer": "wait=15"}
SIGNUP_ALERT = """
[[workflow]]
name = "signup-alert"
on = "user.registered"
template = "welcome"
recipient = "settings.ops_user_id"
when = "event.aggregate_id != settings.ops_user_id"

[workflow.data]
user.name = "user(event.aggregate_id).name"
user.email = "user(event.aggregate_id).email"
app.name = "settings.app_name"
app.url = "settings.app_url"
"""
SAGA = [
    "notification.requested",
    "notification.rendered",
    "notification.attempt_started",
    "notification.delivered",
    "notification.completed",
]
# The process that writes each kind of record, as its `nexus-writer` header names it.
WRITERS = {
    "command": "gateway/",
    "outcome": "command-processor/",
    "event": "command-processor/",
    "request": "workflows/",
    "saga": "notifier/",
}


@pytest.fixture(scope="module")
def stack(
    module_settings: Settings, sink: tuple[SinkLog, int], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Settings]:
    workflows = tmp_path_factory.mktemp("workflows") / "workflows.toml"
    workflows.write_text(SIGNUP_ALERT)
    settings = prepared(
        module_settings,
        workflows_file=workflows,
        workflows_start_from="earliest",
        ops_user_id=f"ops-{uuid.uuid4().hex[:8]}",
        delivery_allow_list=f"127.0.0.1:{sink[1]}",
    )
    with running(settings, SERVICES):
        yield settings


@pytest.fixture(scope="module")
def signup(stack: Settings, sink: tuple[SinkLog, int]) -> dict[str, str]:
    """The ops user reached by webhook, then one user registered: the request to trace."""
    assert stack.ops_user_id is not None
    with api_client(stack, stack.ops_user_id, list(DEFAULT_SCOPES)) as ops:
        created = ops.post("/api/v1/users", json={"email": "ops@example.com", "name": "Ops"},
                           headers=WAIT)  # fmt: skip
        assert created.status_code == 201, created.text
        channel = {"channel": "webhook", "address": f"http://127.0.0.1:{sink[1]}/ops"}
        done = ops.put(f"/api/v1/users/{stack.ops_user_id}/preferences",
                       json={"channels": [channel]}, headers=WAIT)  # fmt: skip
        assert done.status_code == 200, done.text
        # The notifier reads addresses from the read model: have it hold the webhook first.
        seen = ops.get(
            f"/api/v1/users/{stack.ops_user_id}", params={"after": done.json()["position"]}
        )
        assert seen.json()["channels"] == [{**channel, "enabled": True}], seen.text
    correlation_id = f"signup-{uuid.uuid4().hex}"
    with api_client(stack, f"ada-{uuid.uuid4().hex[:8]}", list(DEFAULT_SCOPES)) as ada:
        registered = ada.post("/api/v1/users", json={"email": "ada@example.com", "name": "Ada"},
                              headers={**WAIT, "X-Correlation-Id": correlation_id})  # fmt: skip
    assert registered.status_code == 201, registered.text
    wait_until(lambda: _delivered_to(sink[0], "ada@example.com"), "the sign-up alert webhook")
    found = wait_until(lambda: _completed(stack, correlation_id), "the saga to complete")
    [request] = [n for n in _nodes(found) if n["kind"] == "request"]
    return {
        "correlation_id": correlation_id,
        "command_id": registered.json()["command_id"],
        "notification_id": request["facts"]["notification"],
    }


def test_the_trace_shows_the_signup_from_command_to_webhook_delivery(
    stack: Settings, signup: dict[str, str]
) -> None:
    shown = nexus(stack, "trace", signup["correlation_id"], "--json")

    assert shown.returncode == 0, shown.stderr
    document = json.loads(shown.stdout)
    assert document["correlation_id"] == signup["correlation_id"]
    [command] = document["tree"]
    assert (command["kind"], command["type"], command["id"]) == (
        "command",
        "RegisterUser",
        signup["command_id"],
    )
    assert sorted(c["type"] for c in command["children"]) == ["command.outcome", "user.registered"]
    [registered] = [c for c in command["children"] if c["type"] == "user.registered"]
    [request] = registered["children"]
    assert (request["type"], request["facts"]["requested_by"]) == (
        "notification.submitted",
        "workflow:signup-alert",
    )
    steps = [step["type"] for step in request["children"]]
    assert [step for step in steps if step in SAGA] == SAGA  # in causal (time) order
    [delivered] = [s for s in request["children"] if s["type"] == "notification.delivered"]
    assert delivered["facts"]["channel"] == "webhook"
    for node in _nodes(document):
        assert node["writer"].startswith(WRITERS[node["kind"]]), node
    path = [command, registered, request, delivered]
    assert [n["at"] for n in path] == sorted(n["at"] for n in path)


def test_the_text_tree_draws_the_same_chain(stack: Settings, signup: dict[str, str]) -> None:
    shown = nexus(stack, "trace", signup["correlation_id"])

    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0].startswith(f"trace {signup['correlation_id']}: ")
    order = ["RegisterUser", "user.registered", "notification.submitted", *SAGA]
    found = [next(i for i, line in enumerate(lines) if f" {kind}" in line) for kind in order]
    assert found == sorted(found)
    depth = [lines[i].index(kind) for i, kind in zip(found, order, strict=True)]
    assert depth[0] < depth[1] < depth[2] < depth[3]  # each drawn under its cause


def test_a_command_id_and_a_notification_id_give_the_same_tree(
    stack: Settings, signup: dict[str, str]
) -> None:
    by_correlation = json.loads(nexus(stack, "trace", signup["correlation_id"], "--json").stdout)
    for asked in (signup["command_id"], signup["notification_id"]):
        shown = nexus(stack, "trace", asked, "--json")
        assert shown.returncode == 0, shown.stderr
        assert json.loads(shown.stdout) == {**by_correlation, "id": asked}


def test_an_unknown_id_exits_1_saying_so(stack: Settings) -> None:
    shown = nexus(stack, "trace", "no-such-request")

    assert shown.returncode == 1
    assert shown.stdout == ""
    assert "no record has no-such-request as its correlation, command or notification id" in (
        shown.stderr
    )


def test_operators_get_the_same_tree_over_http(stack: Settings, signup: dict[str, str]) -> None:
    printed = json.loads(nexus(stack, "trace", signup["correlation_id"], "--json").stdout)
    with api_client(stack, "operator", [READ_TRACES]) as operator:
        answered = operator.get(f"/api/v1/traces/{signup['correlation_id']}")
        unknown = operator.get("/api/v1/traces/no-such-request")

    assert answered.status_code == 200, answered.text
    assert answered.json() == printed
    assert unknown.status_code == 404
    assert unknown.headers["content-type"] == "application/problem+json"
    assert unknown.json()["code"] == "trace-not-found"


def test_an_ordinary_user_token_is_refused(stack: Settings, signup: dict[str, str]) -> None:
    with api_client(stack, "ada", list(DEFAULT_SCOPES)) as user:
        refused = user.get(f"/api/v1/traces/{signup['correlation_id']}")

    assert refused.status_code == 403
    assert refused.json()["code"] == "insufficient-scope"


def test_a_trace_answers_503_when_kafka_is_unreachable(settings: Settings) -> None:
    dead = with_free_ports(settings).model_copy(
        update={"kafka_bootstrap": f"127.0.0.1:{free_port()}"}
    )
    gateway = ServiceProcess("gateway", dead)
    try:
        gateway.start(probe="/healthz")
        with api_client(dead, "operator", [READ_TRACES]) as operator:
            answered = operator.get("/api/v1/traces/anything")
    finally:
        gateway.stop()

    assert answered.status_code == 503
    assert answered.headers["retry-after"] == "5"
    assert answered.json()["code"] == "log-unavailable"


def nexus(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [NEXUS, *args], env=environment(settings), capture_output=True, text=True, timeout=120
    )


def wait_until(check: Callable[[], Any], what: str, timeout: float = 90) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := check():
            return found
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def _delivered_to(sink: SinkLog, email: str) -> bool:
    return any(r.path == "/ops" and email.encode() in r.body for r in sink.accepted())


def _completed(settings: Settings, correlation_id: str) -> dict[str, Any] | None:
    found = trace(read_log(settings, 30).entries, correlation_id)
    if found is None:
        return None
    document = trace_json(found)
    done = any(n["type"] == "notification.completed" for n in _nodes(document))
    return document if done else None


def _nodes(document: dict[str, Any]) -> list[dict[str, Any]]:
    def walk(nodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [x for n in nodes for x in (n, *walk(n["children"]))]

    return walk(document["tree"])
