"""A span sink for the bench: accepts OTLP/HTTP exports and counts the bytes, nothing more.

The traced gateway exports to it, so the figure is the cost of recording and exporting
spans, not of a tracing backend's ingestion.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class SinkCounts:
    def __init__(self) -> None:
        self.requests = self.bytes = 0
        self.lock = threading.Lock()


@contextmanager
def otlp_sink() -> Iterator[tuple[SinkCounts, str]]:
    """Yields the counts and the endpoint to set as OTEL_EXPORTER_OTLP_ENDPOINT."""
    counts = SinkCounts()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            size = int(self.headers.get("Content-Length", "0"))
            self.rfile.read(size)
            with counts.lock:
                counts.requests, counts.bytes = counts.requests + 1, counts.bytes + size
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield counts, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
