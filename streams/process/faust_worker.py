"""Runs a Faust app as a `streams.process.serve.Process`: what the Faust-built processes share."""

from __future__ import annotations

import threading
from collections.abc import Callable

import faust


def faust_run(app: faust.App, log_level: str) -> Callable[[threading.Event], None]:
    """The app's worker, run in the foreground. Faust's worker takes over SIGTERM and SIGINT
    itself and returns once it has stopped its agents and committed their offsets."""

    def run(_stop: threading.Event) -> None:
        faust.Worker(app, loglevel=log_level.upper(), quiet=True).execute_from_commandline()

    return run
