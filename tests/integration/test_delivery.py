"""Delivery against real receivers started here: aiosmtpd for email, an HTTP sink for
webhooks and ntfy pushes (allow-listed, since it listens on 127.0.0.1)."""

from __future__ import annotations

import email
import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.policy import default as default_policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from webhook_sink import webhook_sink

from infra.local.processes import free_port
from sagas.adapters.apprise_notifier import AppriseNotifier
from sagas.adapters.config import DeliveryConfig, NtfyConfig, SmtpConfig
from sagas.adapters.targets import TargetGuard
from sagas.rendering import DEFAULT_TEMPLATE_ROOT, Rendered, TemplateRenderer, load_sample

SLOW_SECONDS = 1.5


@dataclass
class Mailbox:
    messages: list[tuple[str, list[str], EmailMessage]] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = email.message_from_bytes(envelope.content, policy=default_policy)
        assert isinstance(parsed, EmailMessage)
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), parsed))
        return "250 OK"


@dataclass(frozen=True)
class Hit:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class Sink(BaseHTTPRequestHandler):
    """Answers by path (webhooks) or by ntfy topic; records every request it sees."""

    hits: list[Hit]
    internal_url: str  # where /redirect points: the sink itself, an internal address

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.hits.append(Hit("POST", self.path, dict(self.headers.items()), body))
        topic = json.loads(body).get("topic") if self.path == "/" else None
        if self.path == "/slow":
            time.sleep(SLOW_SECONDS)
        if self.path == "/redirect":
            self._answer(302, location=self.internal_url)
        elif self.path == "/fail" or topic == "fail500":
            self._answer(500)
        elif self.path == "/gone" or topic == "bad400":
            self._answer(400)
        else:
            self._answer(200)

    do_GET = do_POST

    def _answer(self, status: int, location: str | None = None) -> None:
        payload = json.dumps({"status": status}).encode()
        self.send_response(status)
        if location:
            self.send_header("Location", location)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def mailbox() -> Iterator[tuple[Mailbox, int]]:
    box, port = Mailbox(), free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    yield box, port
    controller.stop()


@pytest.fixture
def sink() -> Iterator[tuple[list[Hit], int]]:
    hits: list[Hit] = []
    handler: type[Sink] = type("RecordingSink", (Sink,), {"hits": hits})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    handler.internal_url = f"http://127.0.0.1:{server.server_port}/internal"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield hits, server.server_port
    server.shutdown()
    server.server_close()


def notifier_for(port: int, **config: Any) -> AppriseNotifier:
    settings = DeliveryConfig(allow_list=(f"127.0.0.1:{port}",), **config)
    return AppriseNotifier(settings)


def render(template: str, channel: Any, **overrides: Any) -> Rendered:
    data = load_sample(DEFAULT_TEMPLATE_ROOT, template) | overrides
    return TemplateRenderer().render(template, channel, data)


def test_email_arrives_with_headers_text_and_html(mailbox: tuple[Mailbox, int]) -> None:
    box, port = mailbox
    smtp = SmtpConfig("127.0.0.1", port, "nexus@example.com", mode="insecure")
    user = {"name": "Ada <b>Lovelace</b>", "email": "ada@example.com"}
    rendered = render("welcome", "email", user=user)

    result = AppriseNotifier(DeliveryConfig(smtp=smtp)).send(
        "email", "ada@example.com", rendered, timeout=5
    )

    assert result.ok, result
    [(mail_from, rcpt_tos, message)] = box.messages
    assert (mail_from, rcpt_tos) == ("nexus@example.com", ["ada@example.com"])
    assert message["From"].addresses[0].addr_spec == "nexus@example.com"
    assert message["To"].addresses[0].addr_spec == "ada@example.com"
    assert message["Subject"] == "Welcome to Nexus, Ada <b>Lovelace</b>"
    html = message.get_body(("html",))
    text = message.get_body(("plain",))
    assert html is not None and text is not None
    assert "Ada &lt;b&gt;Lovelace&lt;/b&gt;" in html.get_content()
    assert '<a href="https://nexus.example.com">Get started</a>' in html.get_content()
    assert "Welcome to Nexus! Your account (ada@example.com) is ready." in text.get_content()


def test_an_unreachable_smtp_relay_is_a_retryable_failure() -> None:
    smtp = SmtpConfig("127.0.0.1", free_port(), "nexus@example.com", mode="insecure")

    result = AppriseNotifier(DeliveryConfig(smtp=smtp)).send(
        "email", "ada@example.com", render("welcome", "email"), timeout=2
    )

    assert (result.ok, result.retryable) == (False, True)


def test_a_webhook_posts_the_rendered_json(sink: tuple[list[Hit], int]) -> None:
    hits, port = sink
    rendered = render("anomaly_alert", "webhook")

    url = f"http://127.0.0.1:{port}/hook"

    result = notifier_for(port).send("webhook", url, rendered, 5, "n-1/webhook/3")

    assert result.ok and result.provider_response.startswith("HTTP 200"), result
    [hit] = hits
    assert (hit.method, hit.path) == ("POST", "/hook")
    assert hit.headers["Content-Type"].startswith("application/json")
    # The same Idempotency-Key on every attempt of a delivery; the attempt is named apart.
    assert (hit.headers["Idempotency-Key"], hit.headers["Nexus-Attempt-Key"]) == (
        "n-1/webhook",
        "n-1/webhook/3",
    )
    assert json.loads(hit.body) == rendered.json


def test_a_redirect_is_not_followed_and_fails_for_good(sink: tuple[list[Hit], int]) -> None:
    hits, port = sink
    url = f"http://127.0.0.1:{port}/redirect"

    result = notifier_for(port).send("webhook", url, render("welcome", "webhook"), 5)

    assert (result.ok, result.retryable) == (False, False)
    assert result.error is not None and "not followed" in result.error
    assert [h.path for h in hits] == ["/redirect"]


@pytest.mark.parametrize(("path", "retryable"), [("/fail", True), ("/gone", False)])
def test_webhook_errors_are_failed_attempts(
    sink: tuple[list[Hit], int], path: str, retryable: bool
) -> None:
    _, port = sink
    url = f"http://127.0.0.1:{port}{path}"

    result = notifier_for(port).send("webhook", url, render("welcome", "webhook"), 5)

    assert (result.ok, result.retryable) == (False, retryable)


def test_a_webhook_timeout_is_a_retryable_failure(sink: tuple[list[Hit], int]) -> None:
    _, port = sink
    url = f"http://127.0.0.1:{port}/slow"

    result = notifier_for(port).send("webhook", url, render("welcome", "webhook"), 0.3)

    assert (result.ok, result.retryable) == (False, True)
    assert result.error is not None and result.error.startswith("timeout")
    assert result.latency_ms < SLOW_SECONDS * 1000


def test_32_threads_sending_at_once_each_reach_the_sink_exactly_once() -> None:
    """Sender threads must not share a connection pool (encode/httpcore#1110)."""
    rendered, sends = render("welcome", "webhook"), 1_600
    with webhook_sink() as (log, port), ThreadPoolExecutor(32) as pool:
        notifier = notifier_for(port)
        url = f"http://127.0.0.1:{port}/hook"
        results = list(
            pool.map(lambda i: notifier.send("webhook", url, rendered, 5, f"n{i}/webhook/1"),
                     range(sends))
        )  # fmt: skip
        notifier.close()
        receipts = log.snapshot()

    assert [r.error for r in results if not r.ok] == []
    assert sorted(r.key or "" for r in receipts) == sorted(f"n{i}/webhook/1" for i in range(sends))


def test_a_sink_that_is_not_allow_listed_is_never_contacted(
    sink: tuple[list[Hit], int],
) -> None:
    hits, port = sink
    notifier = AppriseNotifier(DeliveryConfig(ntfy=NtfyConfig(f"http://127.0.0.1:{port}")))

    webhook = notifier.send(
        "webhook", f"http://127.0.0.1:{port}/hook", render("welcome", "webhook"), 5
    )
    push = notifier.send("push", "alerts", render("welcome", "push"), 5)

    assert [(r.ok, r.retryable) for r in (webhook, push)] == [(False, False)] * 2
    assert webhook.error is not None and "loopback" in webhook.error
    assert hits == []


def test_a_name_resolving_to_loopback_is_refused_before_sending(
    sink: tuple[list[Hit], int],
) -> None:
    hits, port = sink
    guard = TargetGuard(resolver=lambda host, _port: ["127.0.0.1"])
    notifier = AppriseNotifier(DeliveryConfig(), guard=guard)

    result = notifier.send(
        "webhook", f"http://sink.test:{port}/hook", render("welcome", "webhook"), 5
    )

    assert result.error is not None and "loopback" in result.error
    assert hits == []


def test_an_ntfy_push_reaches_the_server(sink: tuple[list[Hit], int]) -> None:
    hits, port = sink
    notifier = notifier_for(port, ntfy=NtfyConfig(f"http://127.0.0.1:{port}"))
    rendered = render("anomaly_alert", "push")

    result = notifier.send("push", "ops-alerts", rendered, 5)

    assert result.ok, result
    [hit] = hits
    assert (hit.method, hit.path) == ("POST", "/")
    payload = json.loads(hit.body)
    assert payload["topic"] == "ops-alerts"
    assert payload["title"] == rendered.title
    assert payload["message"] == rendered.body


@pytest.mark.parametrize(("topic", "retryable"), [("fail500", True), ("bad400", False)])
def test_ntfy_errors_are_failed_attempts(
    sink: tuple[list[Hit], int], topic: str, retryable: bool
) -> None:
    _, port = sink
    notifier = notifier_for(port, ntfy=NtfyConfig(f"http://127.0.0.1:{port}"))

    result = notifier.send("push", topic, render("welcome", "push"), 5)

    assert (result.ok, result.retryable) == (False, retryable)
