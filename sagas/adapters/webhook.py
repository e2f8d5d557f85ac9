"""Generic webhook delivery over httpx, with redirects disabled.

apprise's json:// plugin posts with `requests.post`, which follows redirects (a 302 to
http://169.254.169.254/ would be fetched), and it reports only True/False, so 4xx and 5xx
cannot be told apart. Webhooks therefore go out here: one POST of the rendered JSON,
`follow_redirects=False`, no proxy from the environment, after the SSRF guard.

Each sending thread gets its own `httpx.Client`. httpcore 1.0.9's pool, shared between
threads, can close a keep-alive connection it has just handed to another thread's request
(encode/httpcore#1110): a webhook the receiver accepted then looked like a read error,
was retried, and arrived twice.

The POST connects to the addresses the SSRF guard checked (`pinned_transport`), and the
whole attempt (connect, send, answer) ends within the channel's timeout. The answer is
streamed and read up to `MAX_RESPONSE_BYTES`, undecoded (`Accept-Encoding: identity`, so a
compressed body cannot expand in memory); users can read `provider_response`, so it keeps
at most `EXCERPT_CHARS` printable characters of it.
"""

from __future__ import annotations

import json
import ssl
import threading
import time
from collections.abc import Mapping
from typing import Any

import httpx
from opentelemetry import propagate

from sagas.adapters.pinned_transport import PinnedTransport, pinned
from sagas.adapters.port import DeliveryResult
from sagas.adapters.targets import CheckedTarget

# 4xx answers that mean "try later" rather than "this will never work".
RETRYABLE_STATUS = frozenset({408, 425, 429})
MAX_RESPONSE_BYTES = 4096  # enough for a receiver's usual short answer; the rest is dropped
EXCERPT_CHARS = 200


def excerpt(text: str | bytes, limit: int = EXCERPT_CHARS) -> str:
    """At most `limit` printable characters: controls, bidi overrides and line breaks become
    spaces, runs of space collapse, so an answer cannot forge lines or hide text."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    printable = "".join(c if c.isprintable() else " " for c in text)
    return " ".join(printable.split())[:limit]


def classify(status: int) -> tuple[bool, bool]:
    """(ok, retryable) for an HTTP status; redirects are failures that retrying won't fix."""
    if 200 <= status < 300:
        return True, False
    return False, status >= 500 or status in RETRYABLE_STATUS


class WebhookSender:
    """POSTs JSON to a checked URL and turns every outcome into a DeliveryResult."""

    def __init__(
        self,
        user_agent: str,
        transport: httpx.BaseTransport | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        """`transport` replaces the pinned one (tests); `ssl_context`, the default CAs.

        One SSL context serves every thread's client: building one loads the CA bundle,
        tens of ms under the GIL, and every sender starting at once (after a restart) did
        that inside its first attempt's time limit."""
        self._user_agent, self._transport = user_agent, transport
        self._ssl_context = ssl_context or httpx.create_ssl_context(trust_env=False)
        self._local = threading.local()
        self._clients: list[httpx.Client] = []
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            clients, self._clients = self._clients, []
        for client in clients:
            client.close()

    def _client(self) -> httpx.Client:
        """This thread's client: a connection pool is never shared between threads."""
        client: httpx.Client | None = getattr(self._local, "client", None)
        if client is None:
            client = httpx.Client(
                follow_redirects=False,
                trust_env=False,
                transport=self._transport or PinnedTransport(self._ssl_context),
                headers={"User-Agent": self._user_agent},
            )
            self._local.client = client
            with self._lock:
                self._clients.append(client)
        return client

    def post(
        self,
        target: CheckedTarget,
        payload: Mapping[str, Any],
        timeout: float,
        ledger_key: str | None = None,
    ) -> DeliveryResult:
        """One attempt to a target the guard passed, over within `timeout` seconds in all;
        never raises for provider or network failures.

        `Idempotency-Key` names the delivery (notification/channel), the same on every
        attempt: a receiver that deduplicates on it takes a retry after an answer it sent
        but we never read (a timeout) as the message it already has. `Nexus-Attempt-Key`
        is the ledger key of this one attempt (notification/channel/attempt).
        """
        body = json.dumps(payload, ensure_ascii=False).encode()
        headers = {"Content-Type": "application/json; charset=utf-8", "Accept-Encoding": "identity"}
        if ledger_key is not None:
            headers["Idempotency-Key"] = ledger_key.rsplit("/", 1)[0]
            headers["Nexus-Attempt-Key"] = ledger_key
        propagate.inject(headers)  # the receiver can join the trace (W3C traceparent)
        started = time.perf_counter()
        try:
            with pinned(target.addresses, time.monotonic() + timeout):
                status, location, answer = self._exchange(target.url, body, headers, timeout)
        except httpx.TimeoutException as exc:
            return _failure(started, f"timeout: {type(exc).__name__}", retryable=True)
        except httpx.HTTPError as exc:  # protocol errors may quote the receiver's bytes
            return _failure(
                started, f"connection error: {type(exc).__name__}: {excerpt(str(exc))}", True
            )
        except (httpx.InvalidURL, ValueError) as exc:  # a URL httpx cannot send: never will
            return _failure(started, f"bad address: {excerpt(str(exc))}", retryable=False)
        latency = _elapsed_ms(started)
        summary = f"HTTP {status} {excerpt(answer)}".strip()
        ok, retryable = classify(status)
        if ok:
            return DeliveryResult(True, summary, latency)
        error = f"HTTP {status}"
        if location is not None:
            error += f" redirect to {excerpt(location)!r} not followed"
        return DeliveryResult(False, summary, latency, retryable, error)

    def _exchange(
        self, url: str, body: bytes, headers: dict[str, str], timeout: float
    ) -> tuple[int, str | None, bytes]:
        """(status, redirect location, first MAX_RESPONSE_BYTES of the raw body)."""
        request = self._client().build_request(
            "POST", url, content=body, headers=headers, timeout=timeout
        )
        response = self._client().send(request, stream=True)
        try:
            answer = bytearray()
            for chunk in response.iter_raw():
                answer += chunk
                if len(answer) >= MAX_RESPONSE_BYTES:
                    break  # closing an unread body drops the connection instead of draining it
            location = response.headers.get("location") if response.is_redirect else None
            return response.status_code, location, bytes(answer[:MAX_RESPONSE_BYTES])
        finally:
            response.close()


def _elapsed_ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000


def _failure(started: float, error: str, retryable: bool) -> DeliveryResult:
    return DeliveryResult(False, "", _elapsed_ms(started), retryable, error)
