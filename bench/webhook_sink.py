"""A local webhook receiver fast enough not to limit the notification benchmark.

`python -m bench.webhook_sink PORT` serves HTTP/1.1 keep-alive on 127.0.0.1 from its own
process (uvloop, a bare asyncio Protocol), so its parsing never competes with the bench
client for a GIL. Every POST is answered 200 `{}` and noted as (path, Nexus-Attempt-Key,
arrival time by the wall clock, comparable with the bench's own time.time()).
`GET /receipts?from=N` hands back the notes from the N-th on, one per line; `GET /readyz`
says it is up. `SinkReceipts` is the bench's side: it collects the notes incrementally.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import cast
from urllib.parse import parse_qs, urlsplit

import httpx
import uvloop

from infra.local.child_process import ChildProcess

OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
NOT_FOUND = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"
NO_KEY = "-"


def answer(body: bytes, content_type: str = "text/plain") -> bytes:
    head = f"HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
    return head.encode() + b"\r\n" + body


class SinkProtocol(asyncio.Protocol):
    """One connection: requests are parsed as they complete, pipelined or not."""

    def __init__(self, receipts: list[str]) -> None:
        self.receipts = receipts
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            lines = self.buffer[:end].decode("latin-1").split("\r\n")
            headers = dict(_header(line) for line in lines[1:])
            total = end + 4 + int(headers.get("content-length", "0"))
            if len(self.buffer) < total:
                return  # the body is still on its way
            del self.buffer[:total]
            self.respond(lines[0], headers)

    def respond(self, request_line: str, headers: dict[str, str]) -> None:
        assert self.transport is not None
        method, target, _ = request_line.split(" ", 2)
        url = urlsplit(target)
        if method == "POST":
            key = headers.get("nexus-attempt-key", NO_KEY)
            self.receipts.append(f"{url.path}\t{key}\t{time.time():.6f}\n")
            self.transport.write(OK)
        elif url.path == "/readyz":
            self.transport.write(answer(b"ok"))
        elif url.path == "/receipts":
            first = int(parse_qs(url.query).get("from", ["0"])[0])
            self.transport.write(answer("".join(self.receipts[first:]).encode()))
        else:
            self.transport.write(NOT_FOUND)
        if headers.get("connection", "").lower() == "close":
            self.transport.close()


def _header(line: str) -> tuple[str, str]:
    name, _, value = line.partition(":")
    return name.strip().lower(), value.strip()


async def serve(port: int) -> None:
    receipts: list[str] = []
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SinkProtocol(receipts), "127.0.0.1", port, backlog=1024
    )
    async with server:
        await server.serve_forever()


def sink_process(port: int, log_path: Path) -> ChildProcess:
    argv = [sys.executable, "-m", "bench.webhook_sink", str(port)]
    return ChildProcess("webhook-sink", argv, port, log_path, dict(os.environ))


@dataclass(frozen=True)
class Receipt:
    path: str
    key: str  # NO_KEY when the request had no Nexus-Attempt-Key
    arrival: float  # time.time() in the sink


class SinkReceipts:
    """The bench's copy of the sink's notes, fetched incrementally from `GET /receipts`."""

    def __init__(self, url: str) -> None:
        self.client = httpx.Client(base_url=url, timeout=30)  # one connection for every poll
        self.receipts: list[Receipt] = []

    def __enter__(self) -> SinkReceipts:
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.close()

    def fetch(self) -> list[Receipt]:
        """Notes that arrived since the last call (also kept in `receipts`)."""
        text = self.client.get("/receipts", params={"from": len(self.receipts)}).text
        new = []
        for line in text.splitlines():
            path, key, arrival = line.split("\t")
            new.append(Receipt(path, key, float(arrival)))
        self.receipts.extend(new)
        return new


if __name__ == "__main__":
    uvloop.run(serve(int(sys.argv[1])))
