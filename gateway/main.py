"""The gateway process: uvicorn serving gateway.app."""

from __future__ import annotations

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
    uvicorn.run(
        app,
        host=settings.gateway_host,
        port=settings.gateway_port,
        log_config=None,
        access_log=False,
        lifespan="on",
        # Open analytics streams (SSE) never finish by themselves; a `Prefer: wait` is <= 30 s.
        timeout_graceful_shutdown=35,
    )
