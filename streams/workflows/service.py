"""Composition root of the workflows worker (`nexus run workflows`)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from contextlib import ExitStack

import faust
import structlog

from infra.config.settings import Settings
from projections.lookups import PostgresLookups
from sagas.rendering import TemplateRenderer
from sagas.template_variables import TemplateVariables
from sagas.workflows import Workflow, parse_workflows
from streams.process.faust_worker import faust_run
from streams.process.serve import Process, serve, watchdog_for
from streams.process.watchdog import Watchdog
from streams.workflows.app import build_app
from streams.workflows.runner import CATCH_UP_TIMEOUT_S, ReadModels, WorkflowRunner

log = structlog.get_logger()


class WorkflowWorker:
    """The runner behind a Faust app consuming the events topic in group `group`."""

    def __init__(
        self, settings: Settings, runner: WorkflowRunner, group: str, watchdog: Watchdog
    ) -> None:
        self.settings, self.runner, self.group = settings, runner, group
        self.watchdog = watchdog
        self.ready = threading.Event()

    def app(self) -> faust.App:
        return build_app(self.settings, self.runner, self.ready, self.group, self.watchdog)

    def run(self, stop: threading.Event) -> None:
        """Runs the app on this thread, without a `faust.Worker`, until `stop` is set."""
        asyncio.run(self._serve(stop))

    async def _serve(self, stop: threading.Event) -> None:
        app = self.app()  # made inside the running loop, which it binds to
        await app.start()
        try:
            while not stop.is_set() and not app.should_stop:
                await asyncio.sleep(0.05)
        finally:
            await app.stop()
            self.runner.close()


def load_workflows(settings: Settings) -> list[Workflow]:
    """The configured workflows, checked against the templates they may request and the
    variables those need."""
    text = settings.workflows_file.read_text(encoding="utf-8")
    templates = TemplateRenderer(settings.templates_dir).requestable()
    needs = TemplateVariables(settings.templates_dir).needed
    return parse_workflows(text, templates=templates, needs=needs)


def bootstrap(
    settings: Settings,
    *,
    workflows: Sequence[Workflow] | None = None,
    read_models: ReadModels | None = None,
    group: str | None = None,
    catch_up_timeout_s: float = CATCH_UP_TIMEOUT_S,
) -> WorkflowWorker:
    """The worker wired to the configured workflows and the PostgreSQL read models."""
    runner = WorkflowRunner(
        settings,
        load_workflows(settings) if workflows is None else workflows,
        read_models=read_models or PostgresLookups(settings.resolved_database_url),
        catch_up_timeout_s=catch_up_timeout_s,
    )
    group = group or f"{settings.topic_prefix}.workflows"
    return WorkflowWorker(settings, runner, group, watchdog_for(settings))


def run(settings: Settings) -> None:
    """The workflows process; Faust's worker stops it cleanly on SIGTERM or SIGINT."""

    def build(resources: ExitStack) -> Process:
        worker = bootstrap(settings)  # an invalid workflows file stops the process here
        resources.callback(worker.runner.close)
        log.info("workflows", names=[w.name for w in worker.runner.workflows])
        app = worker.app()
        return Process(worker.ready.is_set, faust_run(app, settings.log_level), worker.watchdog)

    serve("workflows", settings, build, health_port=settings.workflows_health_port)
