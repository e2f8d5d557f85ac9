"""An open-loop HTTP/1.1 client: request i goes out at t0 + i/rate, whatever came before.

Keep-alive connections ("lanes") each take every lanes-th request, so one slow answer
delays only its lane. It speaks just enough HTTP for the gateway's JSON answers, which
keeps the client's own cost per request far below httpx's.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Sent:
    """One request: when it was due, sent and answered (time.monotonic()), and its status.

    `sent_at` is the send time again by the wall clock, to compare with event timestamps.
    """

    index: int
    due: float
    sent: float
    sent_at: float
    answered: float = 0.0
    status: int = 0


@dataclass
class PacedRun:
    rate: float
    lanes: int
    requests: list[Sent] = field(default_factory=list)

    @property
    def achieved_rate(self) -> float:
        if len(self.requests) < 2:
            return 0.0
        sent = [r.sent for r in self.requests]
        return (len(sent) - 1) / (max(sent) - min(sent))


def request_bytes(host: str, path: str, token: str, body: bytes) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def read_status(reader: asyncio.StreamReader) -> int:
    """Read one response with a Content-Length body; return its status code."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    length = next(
        (
            int(line.split(":", 1)[1])
            for line in lines
            if line.lower().startswith("content-length:")
        ),
        None,
    )
    if length is None:
        raise RuntimeError(f"answer without Content-Length: {lines[0]}")
    await reader.readexactly(length)
    return int(lines[0].split(" ", 2)[1])


async def paced(
    port: int,
    rate: float,
    total: int,
    request: Callable[[int], bytes],
    before_send: Callable[[int], None],
    lanes: int,
) -> PacedRun:
    """Send `total` requests at `rate`/s over `lanes` connections to 127.0.0.1:`port`."""
    result = PacedRun(rate, lanes)
    t0 = time.monotonic() + 0.2  # let every lane connect first

    async def lane(first: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for index in range(first, total, lanes):
                due = t0 + index / rate
                if (delay := due - time.monotonic()) > 0:
                    await asyncio.sleep(delay)
                before_send(index)
                sent = Sent(index, due, time.monotonic(), time.time())
                writer.write(request(index))
                sent.status = await read_status(reader)
                sent.answered = time.monotonic()
                result.requests.append(sent)
        finally:
            writer.close()

    await asyncio.gather(*(lane(k) for k in range(lanes)))
    result.requests.sort(key=lambda r: r.index)
    return result
