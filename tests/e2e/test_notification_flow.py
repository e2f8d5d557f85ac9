"""Notifications as a client drives them: HTTP request, real SMTP and push receivers, audit.

The whole stack runs as processes (command processor, projector, gateway, notifier);
email goes to an aiosmtpd server, ntfy pushes to a local HTTP sink, both started here.
"""

from __future__ import annotations

import email
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.policy import default as default_policy
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from stack import NEXUS, api_client, prepared, running
from webhook_sink import SinkLog, wait_until, webhook_sink

from infra.config.settings import Settings
from infra.local.processes import free_port
from infra.local.service_env import environment
from sagas.rendering import load_sample

WAIT = {"Prefer": "wait=15"}
SERVICES = ("command-processor", "projector", "gateway", "notifier")
SCOPES = [
    "users:read",
    "users:write",
    "users:admin",
    "notifications:send",
    "notifications:read",
    "sagas:read",
]


@dataclass
class Mailbox:
    messages: list[tuple[list[str], EmailMessage]] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = email.message_from_bytes(envelope.content, policy=default_policy)
        assert isinstance(parsed, EmailMessage)
        self.messages.append((list(envelope.rcpt_tos), parsed))
        return "250 OK"


@pytest.fixture(scope="module")
def receivers() -> Iterator[tuple[Mailbox, int, SinkLog, int]]:
    box, smtp_port = Mailbox(), free_port()
    controller = Controller(box, hostname="127.0.0.1", port=smtp_port)
    controller.start()
    with webhook_sink() as (sink, sink_port):
        yield box, smtp_port, sink, sink_port
    controller.stop()


@pytest.fixture(scope="module")
def stack(
    module_settings: Settings, receivers: tuple[Mailbox, int, SinkLog, int]
) -> Iterator[Settings]:
    _, smtp_port, _, sink_port = receivers
    settings = prepared(
        module_settings,
        smtp_host="127.0.0.1",
        smtp_port=smtp_port,
        smtp_mode="insecure",
        smtp_from="nexus@example.com",
        ntfy_server=f"http://127.0.0.1:{sink_port}",
        delivery_allow_list=f"127.0.0.1:{sink_port}",
        notification_base_delay_ms=100,
        notification_max_delay_ms=200,
    )
    with running(settings, SERVICES):
        yield settings


@pytest.fixture(scope="module")
def api(stack: Settings) -> Iterator[httpx.Client]:
    with api_client(stack, "ops", SCOPES) as client:
        yield client


def user_with(api: httpx.Client, channels: list[dict[str, Any]]) -> tuple[str, str]:
    address = f"{uuid.uuid4().hex[:8]}@example.com"
    created = api.post("/api/v1/users", json={"email": address, "name": "Ada"}, headers=WAIT)
    user_id: str = created.json()["aggregate_id"]
    done = api.put(
        f"/api/v1/users/{user_id}/preferences", json={"channels": channels}, headers=WAIT
    )
    assert done.status_code == 200, done.text
    assert api.get(f"/api/v1/users/{user_id}", params={"after": done.json()["position"]}).is_success
    return user_id, address


def request(api: httpx.Client, body: dict[str, Any]) -> str:
    response = api.post("/api/v1/notifications", json=body)
    assert response.status_code == 202, response.text
    notification_id: str = response.json()["notification_id"]
    assert response.headers["location"] == f"/api/v1/notifications/{notification_id}"
    return notification_id


def finished(api: httpx.Client, notification_id: str) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        response = api.get(f"/api/v1/notifications/{notification_id}")
        body: dict[str, Any] = response.json()
        return body if response.is_success and body["status"] in {"completed", "given_up"} else None

    result: dict[str, Any] = wait_until(done, 30, f"notification {notification_id} to finish")
    return result


def test_an_email_notification_arrives_with_text_and_html(
    api: httpx.Client, receivers: tuple[Mailbox, int, SinkLog, int]
) -> None:
    box = receivers[0]
    user_id, address = user_with(api, [{"channel": "email", "address": "ada@example.org"}])
    data = load_sample(Settings().templates_dir, "welcome")
    notification_id = request(api, {"user_id": user_id, "template": "welcome", "data": data})
    body = finished(api, notification_id)
    assert body["status"] == "completed"
    assert [(a["channel"], a["attempt"], a["status"]) for a in body["attempts"]] == [
        ("email", 1, "delivered")
    ]
    [(rcpt, message)] = [m for m in box.messages if m[0] == ["ada@example.org"]]
    assert message["From"].addresses[0].addr_spec == "nexus@example.com"
    assert message["Subject"] and "\n" not in message["Subject"]
    html, text = message.get_body(("html",)), message.get_body(("plain",))
    assert html is not None and text is not None
    assert "<" in html.get_content() and text.get_content().strip()
    assert address not in {r for r, _ in box.messages for r in r}  # prefs, not sign-up address


def test_a_failing_push_falls_back_to_email(
    api: httpx.Client, receivers: tuple[Mailbox, int, SinkLog, int]
) -> None:
    box, _, sink, _ = receivers
    channels = [
        {"channel": "push", "address": "fail"},
        {"channel": "email", "address": "grace@example.org"},
    ]
    user_id, _ = user_with(api, channels)
    data = load_sample(Settings().templates_dir, "welcome")
    body = {"user_id": user_id, "template": "welcome", "data": data, "channels": ["push"]}
    notification_id = request(api, body)
    result = finished(api, notification_id)
    assert result["status"] == "completed"
    attempts = [(a["channel"], a["attempt"], a["status"]) for a in result["attempts"]]
    assert attempts == [
        ("email", 1, "delivered"),
        ("push", 1, "failed"),
        ("push", 2, "failed"),
        ("push", 3, "failed"),
    ]
    pushes = [r for r in sink.snapshot() if r.key is None and b'"topic": "fail"' in r.body]
    assert len(pushes) >= 3
    assert [m for m in box.messages if m[0] == ["grace@example.org"]]
    history = api.get(f"/api/v1/sagas/{notification_id}/history").json()["events"]
    kinds = [e["type"].removeprefix("notification.") for e in history]
    assert kinds.count("fell_back") == 1 and kinds[-1] == "completed"
    assert [e["version"] for e in history] == list(range(1, len(history) + 1))


def test_saga_audit_reads_the_story_from_the_topic(api: httpx.Client, stack: Settings) -> None:
    user_id, _ = user_with(api, [{"channel": "email", "address": "lin@example.org"}])
    data = load_sample(Settings().templates_dir, "welcome")
    notification_id = request(api, {"user_id": user_id, "template": "welcome", "data": data})
    finished(api, notification_id)
    audit = subprocess.run(
        [NEXUS, "saga", "audit", notification_id],
        env=environment(stack),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert audit.returncode == 0, audit.stderr
    lines = audit.stdout.splitlines()
    assert "notification.delivered" in audit.stdout and "channel=email" in audit.stdout
    assert lines[-2].startswith("integrity: ok") and lines[-1] == "status: completed (terminal)"
