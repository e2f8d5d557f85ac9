"""Test helper: a local webhook receiver that logs every request and fails some on purpose."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Receipt:
    key: str | None  # the Nexus-Attempt-Key header: notification/channel/attempt
    idempotency_key: str | None  # the Idempotency-Key header: notification/channel
    path: str
    body: bytes
    status: int
    traceparent: str | None = None  # W3C trace context the sender passed on


@dataclass(frozen=True)
class Outages:
    """A provider down for a moment: the last `length` of every `every` requests to `/flaky`
    fail in a row. Random failures alone seldom come `failure_threshold` in a row, so the
    circuit breaker would trip only by chance."""

    every: int
    length: int

    def down(self, request: int) -> bool:
        return request % self.every >= self.every - self.length


@dataclass
class SinkLog:
    """What the sink saw; `/fail`, the ntfy topic `fail`, `fail_rate` of `/flaky` and its
    `outages` get 500."""

    fail_rate: float = 0.0
    outages: Outages | None = None
    seed: int = 7
    receipts: list[Receipt] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)
        self._flaky_requests = 0

    def status_for(self, path: str, body: bytes, key: str | None) -> int:
        with self.lock:
            if path == "/fail" or (path == "/" and b'"topic": "fail"' in body):
                return 500  # a failing webhook, or a failing ntfy topic
            if path == "/flaky":
                return 500 if self._flaky_fails() else 200
            if path == "/fail-first":  # fails each notification's first attempt only
                return 500 if key is not None and key.endswith("/1") else 200
            return 200

    def _flaky_fails(self) -> bool:
        request, self._flaky_requests = self._flaky_requests, self._flaky_requests + 1
        down = self.outages is not None and self.outages.down(request)
        return self._random.random() < self.fail_rate or down

    def add(self, receipt: Receipt) -> None:
        with self.lock:
            self.receipts.append(receipt)

    def snapshot(self) -> list[Receipt]:
        with self.lock:
            return list(self.receipts)

    def accepted(self) -> list[Receipt]:
        return [r for r in self.snapshot() if r.status == 200]


def _handler(log: SinkLog) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            key = self.headers.get("Nexus-Attempt-Key")
            status = log.status_for(self.path, body, key)
            idempotency_key, traceparent = (
                self.headers.get("Idempotency-Key"),
                self.headers.get("traceparent"),
            )
            log.add(Receipt(key, idempotency_key, self.path, body, status, traceparent))
            payload = b'{"ok": true}' if status == 200 else b'{"ok": false}'
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


class QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a sender killed mid-request resets its connection: expected in fault tests


@contextmanager
def webhook_sink(
    fail_rate: float = 0.0, outages: Outages | None = None
) -> Iterator[tuple[SinkLog, int]]:
    log = SinkLog(fail_rate=fail_rate, outages=outages)
    server = QuietServer(("127.0.0.1", 0), _handler(log), bind_and_activate=False)
    server.request_queue_size = 512  # the default backlog of 5 refuses concurrent senders
    server.server_bind()
    server.server_activate()
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield log, server.server_port
    finally:
        server.shutdown()
        server.server_close()


def wait_until(check: Any, timeout: float, what: str, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
