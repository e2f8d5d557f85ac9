"""Generic webhook delivery over httpx, with redirects disabled.

apprise's json:// plugin posts with `requests.post`, which follows redirects (a 302 to
http://169.254.169.254/ would be fetched), and it reports only True/False, so 4xx and 5xx
cannot be told apart. Webhooks therefore go out here: one POST of the rendered JSON,
`follow_redirects=False`, no proxy from the environment, after the SSRF guard.

Each sending thread gets its own `httpx.Client`. httpcore 1.0.9's pool, shared between
threads, can close a keep-alive connection it has just handed to another thread's request
(encode/httpcore#1110): a webhook the receiver accepted then looked like a read error,
was retried, and arrived twice.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping
from typing import Any

import httpx

from sagas.delivery.port import DeliveryResult

# 4xx answers that mean "try later" rather than "this will never work".
RETRYABLE_STATUS = frozenset({408, 425, 429})
RESPONSE_EXCERPT = 500


def classify(status: int) -> tuple[bool, bool]:
    """(ok, retryable) for an HTTP status; redirects are failures that retrying won't fix."""
    if 200 <= status < 300:
        return True, False
    return False, status >= 500 or status in RETRYABLE_STATUS


class WebhookSender:
    """POSTs JSON to a checked URL and turns every outcome into a DeliveryResult."""

    def __init__(self, user_agent: str, transport: httpx.BaseTransport | None = None) -> None:
        self._user_agent, self._transport = user_agent, transport
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
                transport=self._transport,
                headers={"User-Agent": self._user_agent},
            )
            self._local.client = client
            with self._lock:
                self._clients.append(client)
        return client

    def post(
        self,
        url: str,
        payload: Mapping[str, Any],
        timeout: float,
        ledger_key: str | None = None,
    ) -> DeliveryResult:
        """One attempt; never raises for provider or network failures.

        `Idempotency-Key` names the delivery (notification/channel), the same on every
        attempt: a receiver that deduplicates on it takes a retry after an answer it sent
        but we never read (a timeout) as the message it already has. `Nexus-Attempt-Key`
        is the ledger key of this one attempt (notification/channel/attempt).
        """
        body = json.dumps(payload, ensure_ascii=False).encode()
        headers = {"Content-Type": "application/json; charset=utf-8"}
        if ledger_key is not None:
            headers["Idempotency-Key"] = ledger_key.rsplit("/", 1)[0]
            headers["Nexus-Attempt-Key"] = ledger_key
        started = time.perf_counter()
        try:
            response = self._client().post(url, content=body, headers=headers, timeout=timeout)
        except httpx.TimeoutException as exc:
            return _failure(started, f"timeout: {type(exc).__name__}", retryable=True)
        except httpx.HTTPError as exc:
            return _failure(started, f"connection error: {type(exc).__name__}: {exc}", True)
        latency = _elapsed_ms(started)
        summary = f"HTTP {response.status_code} {response.text[:RESPONSE_EXCERPT]}".strip()
        ok, retryable = classify(response.status_code)
        if ok:
            return DeliveryResult(True, summary, latency)
        error = f"HTTP {response.status_code}"
        if response.is_redirect:
            error += f" redirect to {response.headers.get('location', '?')!r} not followed"
        return DeliveryResult(False, summary, latency, retryable, error)


def _elapsed_ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000


def _failure(started: float, error: str, retryable: bool) -> DeliveryResult:
    return DeliveryResult(False, "", _elapsed_ms(started), retryable, error)
