"""An httpx transport that connects only to the addresses the SSRF guard checked, and keeps a
whole exchange inside one time limit.

Pinning: httpx resolves the URL's host itself when it connects, so a DNS answer that changed
after `TargetGuard.check` (rebinding, or a short TTL) would send the request to an address
nobody checked. Here the connection goes to `CheckedTarget.addresses` instead, tried in
order; the URL is left alone, so the `Host` header, TLS SNI and certificate checks all use
the original name. An allow-listed `host:port` carries no addresses and is connected by
name (the operator vouched for it). A connection the pool opened earlier for the same
origin was made to an address checked then, so reusing it is safe.

Time limit: httpx timeouts are per phase and per socket operation, so a receiver dripping
one byte per read timeout could hold a sender thread for ever. Every socket operation here
is given at most the time left before the attempt's deadline, and fails as a timeout once
it has passed. Both facts are set per request with `pinned()`, in a ContextVar: httpx's
sync client connects, writes and reads on the calling thread, and sender threads each
have their own context.

httpx has no parameter for a network backend, so `PinnedTransport` replaces the connection
pool that `httpx.HTTPTransport` built with an httpcore pool that uses `PinnedBackend`.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import httpcore
import httpx

SocketOption = Any  # httpcore's SOCKET_OPTION union, passed through untouched


@dataclass(frozen=True)
class Pin:
    """Where this request may connect, and by when (time.monotonic()) it must be over."""

    addresses: tuple[str, ...]
    deadline: float

    def time_left(self, timeout: float | None, expired: type[Exception]) -> float:
        """`timeout` capped to what is left of the deadline; `expired` once nothing is."""
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise expired("the attempt's total time limit is spent")
        return left if timeout is None else min(timeout, left)


_current: ContextVar[Pin | None] = ContextVar("webhook_pin", default=None)


@contextmanager
def pinned(addresses: tuple[str, ...], deadline: float) -> Iterator[None]:
    """Requests sent on this thread inside the block connect to `addresses` (by name when
    empty) and must be done, body read included, by `deadline` (time.monotonic())."""
    token = _current.set(Pin(addresses, deadline))
    try:
        yield
    finally:
        _current.reset(token)


def _capped(timeout: float | None, expired: type[Exception]) -> float | None:
    pin = _current.get()
    return timeout if pin is None else pin.time_left(timeout, expired)


class DeadlineStream(httpcore.NetworkStream):
    """A connection whose every operation ends by the current request's deadline."""

    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _capped(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _capped(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        capped = _capped(timeout, httpcore.ConnectTimeout)
        return DeadlineStream(self._inner.start_tls(ssl_context, server_hostname, capped))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class PinnedBackend(httpcore.NetworkBackend):
    """Opens TCP connections to the pinned addresses only; refuses when nothing is pinned."""

    def __init__(self, inner: httpcore.NetworkBackend | None = None) -> None:
        self._inner = inner or httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> httpcore.NetworkStream:
        pin = _current.get()
        if pin is None:
            raise httpcore.ConnectError(f"no checked address for {host}:{port}")
        failure: Exception | None = None
        for address in pin.addresses or (host,):
            capped = pin.time_left(timeout, httpcore.ConnectTimeout)
            try:
                stream = self._inner.connect_tcp(
                    address, port, capped, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc  # like socket.create_connection: try the next address
                continue
            return DeadlineStream(stream)
        assert failure is not None
        raise failure

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> httpcore.NetworkStream:
        raise httpcore.ConnectError("webhooks never go to unix sockets")


class PinnedTransport(httpx.HTTPTransport):
    """httpx's transport (its request mapping and exception translation), on our backend."""

    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        # Loading the CA bundle costs tens of ms of CPU under the GIL: once, not twice.
        context = ssl_context or httpx.create_ssl_context(trust_env=False)
        super().__init__(verify=context, trust_env=False)
        limits = httpx.Limits()
        self._pool = httpcore.ConnectionPool(
            ssl_context=context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=PinnedBackend(),
        )
