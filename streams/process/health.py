"""A small HTTP endpoint for workers: /healthz, /readyz and /metrics (Prometheus).

/healthz answers 200 while the process's watchdog finds it alive (every loop polled within
its bound, no fatal error) and 503 otherwise; /readyz answers 200 only while it is also ready
(not catching up, holding work it can serve). A failing answer lists its problems.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from streams.process.watchdog import Verdict, Watchdog


class HealthServer:
    """Serves liveness and readiness (from a watchdog) and metrics on a daemon thread."""

    def __init__(self, host: str, port: int, watchdog: Watchdog) -> None:
        handler = _handler(watchdog.liveness, watchdog.readiness)
        self._server = ThreadingHTTPServer((host, port), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> HealthServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _handler(
    live: Callable[[], Verdict], ready: Callable[[], Verdict]
) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            if self.path == "/healthz":
                self._verdict(live(), "ok", "failing")
            elif self.path == "/readyz":
                self._verdict(ready(), "ready", "not ready")
            elif self.path == "/metrics":
                self._send(200, generate_latest(), CONTENT_TYPE_LATEST)
            else:
                self._send(404, b'{"status":"not found"}', "application/json")

        def _verdict(self, verdict: Verdict, ok_status: str, failing_status: str) -> None:
            body = verdict.body(ok_status, failing_status)
            self._send(200 if verdict.ok else 503, body, "application/json")

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            """Probes every second would drown the JSON logs."""

    return Handler
