"""The gateway process: uvicorn serving gateway.app."""

from __future__ import annotations

import socket
from contextlib import ExitStack

import uvicorn
from starlette.applications import Starlette

from gateway.app import create_app
from infra.config.settings import Settings
from streams.process.serve import Process, serve


def run(settings: Settings) -> None:
    """Composition root of the gateway process; uvicorn answers /readyz and handles signals."""

    def build(_: ExitStack) -> Process:
        app = create_app(settings)
        return Process(lambda: True, lambda _stop: _serve(app, settings))

    # It must start, and answer 503, while Kafka is away: topics are the processors' business.
    serve("gateway", settings, build, health_port=None, creates_topics=False)


def _serve(app: Starlette, settings: Settings) -> None:
    config = uvicorn.Config(
        app,
        host=settings.gateway_host,
        port=settings.gateway_port,
        log_config=None,
        access_log=False,
        lifespan="on",
        # Open analytics streams (SSE) never finish by themselves; a `Prefer: wait` is <= 30 s.
        timeout_graceful_shutdown=35,
    )
    # Every gateway instance binds the one port (SO_REUSEPORT: the kernel spreads new
    # connections over them, and over the survivors when one dies); an instance's own port,
    # when it has one, lets `nexus up` and `nexus status` probe it alone.
    sockets = [_bound(settings.gateway_host, settings.gateway_port, shared=True)]
    if settings.gateway_instance_port is not None:
        sockets.append(_bound(settings.gateway_host, settings.gateway_instance_port, shared=False))
    uvicorn.Server(config).run(sockets=sockets)


def _bound(host: str, port: int, *, shared: bool) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does itself
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, int(shared))
    sock.bind((host, port))
    return sock
