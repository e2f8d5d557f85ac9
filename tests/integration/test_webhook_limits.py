"""Webhook hardening against real local receivers: the connection goes to the address the
SSRF guard checked (with the original name in Host and TLS SNI), an attempt ends within its
time limit even when the receiver drips, and only a capped, sanitized excerpt of the answer
is read and kept."""

from __future__ import annotations

import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from test_delivery import render

from sagas.adapters.apprise_notifier import AppriseNotifier
from sagas.adapters.config import DeliveryConfig
from sagas.adapters.port import DeliveryResult
from sagas.adapters.targets import AllowList, TargetGuard
from sagas.adapters.webhook import EXCERPT_CHARS, WebhookSender

HOSTILE = "ok\r\nSet-Cookie: forged\x1b[31m\u202eevil\u0000" + "x" * 5_000
HUGE_BYTES = 64 * 1024 * 1024


@dataclass
class Seen:
    hosts: list[str] = field(default_factory=list)
    sni: list[str | None] = field(default_factory=list)
    huge_sent: list[int] = field(default_factory=list)


class Receiver(BaseHTTPRequestHandler):
    """`/hook` answers at once; `/drip` trickles its answer; `/huge` sends 64 MiB;
    `/hostile` answers with control characters, a bidi override and a long body."""

    seen: Seen

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.seen.hosts.append(self.headers.get("Host", ""))
        try:
            match self.path:
                case "/drip":
                    self._drip()
                case "/huge":
                    self._huge()
                case "/hostile":
                    self._answer(HOSTILE.encode())
                case _:
                    self._answer(b'{"ok": true}')
        except (BrokenPipeError, ConnectionResetError):
            pass  # the sender hung up, as it should

    def _answer(self, body: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _drip(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "100")
        self.end_headers()
        for _ in range(100):  # a byte every 0.1 s: each read is quick, the whole is not
            self.wfile.write(b"x")
            self.wfile.flush()
            time.sleep(0.1)

    def _huge(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(HUGE_BYTES))
        self.end_headers()
        chunk, sent = b"y" * 65_536, 0
        try:
            while sent < HUGE_BYTES:
                self.wfile.write(chunk)
                sent += len(chunk)
        finally:
            self.seen.huge_sent.append(sent)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def receiver(host: str, tls: ssl.SSLContext | None = None) -> Iterator[tuple[Seen, int]]:
    seen = Seen()
    handler: type[Receiver] = type("Recording", (Receiver,), {"seen": seen})
    server = ThreadingHTTPServer((host, 0), handler)
    server.daemon_threads = True
    if tls is not None:
        tls.sni_callback = lambda _sock, name, _ctx: seen.sni.append(name)
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield seen, server.server_port
    finally:
        server.shutdown()
        server.server_close()


Post = Callable[..., DeliveryResult]


@contextmanager
def webhooks(
    names: dict[str, list[str]], ssl_context: ssl.SSLContext | None = None
) -> Iterator[Post]:
    """`post(url, timeout=5)` sends the welcome webhook. Names resolve from `names` only, for
    the guard; loopback is allow-listed as a network, so its addresses are still checked."""
    guard = TargetGuard(allow=AllowList.parse(["127.0.0.0/8"]), resolver=lambda h, _p: names[h])
    sender = WebhookSender("nexus-test", ssl_context=ssl_context)
    notifier = AppriseNotifier(DeliveryConfig(), guard=guard, webhook=sender)
    rendered = render("welcome", "webhook")
    try:
        yield lambda url, timeout=5.0: notifier.send("webhook", url, rendered, timeout)
    finally:
        notifier.close()


def test_a_name_only_the_guard_can_resolve_is_reached_with_its_host_header() -> None:
    with receiver("127.0.0.1") as (seen, port), webhooks({"sink.test": ["127.0.0.1"]}) as post:
        result = post(f"http://sink.test:{port}/hook")

    assert result.ok, result
    assert seen.hosts == [f"sink.test:{port}"]


def test_the_connection_goes_to_the_checked_address_not_to_a_new_dns_answer() -> None:
    """`localhost` now resolves to 127.0.0.1, where nothing listens on this port; the guard
    checked 127.0.0.2, and that is where the webhook goes (a rebinding would be ignored)."""
    with receiver("127.0.0.2") as (seen, port), webhooks({"localhost": ["127.0.0.2"]}) as post:
        result = post(f"http://localhost:{port}/hook")

    assert result.ok, result
    assert seen.hosts == [f"localhost:{port}"]


def test_checked_addresses_are_tried_in_order() -> None:
    with (
        receiver("127.0.0.2") as (seen, port),
        socket.socket() as dead,
        webhooks({"multi.test": ["127.0.0.3", "127.0.0.2"]}) as post,
    ):
        dead.bind(("127.0.0.3", port))  # bound, not listening: 127.0.0.3 refuses
        result = post(f"http://multi.test:{port}/hook")

    assert result.ok, result
    assert len(seen.hosts) == 1


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for sink.test only."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "1", "-subj", "/CN=sink.test",
         "-addext", "subjectAltName=DNS:sink.test", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


def test_https_to_a_pinned_address_sends_the_name_as_sni_and_checks_the_certificate(
    certificate: tuple[Path, Path],
) -> None:
    cert, key = certificate
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(cert, key)
    trusting = ssl.create_default_context(cafile=str(cert))
    names = {"sink.test": ["127.0.0.1"], "other.test": ["127.0.0.1"]}
    with receiver("127.0.0.1", server_tls) as (seen, port), webhooks(names, trusting) as post:
        good = post(f"https://sink.test:{port}/hook")
        wrong = post(f"https://other.test:{port}/hook")

    assert good.ok, good
    assert seen.sni[0] == "sink.test" and seen.hosts == [f"sink.test:{port}"]
    # The certificate names sink.test only: the same address under another name is refused.
    assert not wrong.ok and wrong.error is not None and "CERTIFICATE_VERIFY_FAILED" in wrong.error


def test_a_dripping_answer_is_cut_at_the_total_time_limit() -> None:
    with receiver("127.0.0.1") as (_, port), webhooks({}) as post:
        result = post(f"http://127.0.0.1:{port}/drip", timeout=1.0)

    assert (result.ok, result.retryable) == (False, True)
    assert result.error is not None and result.error.startswith("timeout")
    assert result.latency_ms < 1_800  # per-read timeouts alone would wait the full 10 s


def test_a_huge_answer_is_read_only_up_to_the_cap() -> None:
    with receiver("127.0.0.1") as (seen, port), webhooks({}) as post:
        result = post(f"http://127.0.0.1:{port}/huge")
        deadline = time.monotonic() + 5
        while not seen.huge_sent and time.monotonic() < deadline:
            time.sleep(0.05)

    assert result.ok, result
    assert result.provider_response == "HTTP 200 " + "y" * EXCERPT_CHARS
    assert seen.huge_sent and seen.huge_sent[0] < HUGE_BYTES  # we hung up long before the end


def test_only_a_short_printable_excerpt_of_the_answer_is_kept() -> None:
    with receiver("127.0.0.1") as (_, port), webhooks({}) as post:
        result = post(f"http://127.0.0.1:{port}/hostile")

    assert result.ok, result
    kept = result.provider_response.removeprefix("HTTP 200 ")
    assert kept.startswith("ok Set-Cookie: forged [31m evil")
    assert len(kept) == EXCERPT_CHARS and kept.isprintable()
    assert "\r" not in kept and "\n" not in kept and "\u202e" not in kept
