"""The gateway process: uvicorn serving gateway.app."""

from __future__ import annotations

import uvicorn

from gateway.app import create_app
from infra.logging import configure_logging
from infra.settings import Settings


def run(settings: Settings) -> None:
    configure_logging(settings.log_level, "gateway")
    uvicorn.run(
        create_app(settings),
        host=settings.gateway_host,
        port=settings.gateway_port,
        log_config=None,
        access_log=False,
        lifespan="on",
        # Open analytics streams (SSE) never finish by themselves; a `Prefer: wait` is <= 30 s.
        timeout_graceful_shutdown=35,
    )
