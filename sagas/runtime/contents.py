"""Rendered messages, kept in memory by content reference until their saga ends.

The saga records only a reference (a hash of the rendered message) and its size, so the
log holds no message bodies. A worker that takes a saga over renders it again from the
template and data in `notification.requested`; if a template changed in between, the new
rendering is sent and the mismatch is logged.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, cast

import structlog

from aggregates.channels import CHANNELS, Channel
from aggregates.codec import to_data
from sagas.notification.commands import (
    RecordRenderFailure,
    RecordRendering,
    RenderNotification,
)
from sagas.notification.events import RenderedContent
from sagas.rendering import Rendered, TemplateError, TemplateRenderer

log = structlog.get_logger()


def content_ref(rendered: Rendered) -> tuple[str, int]:
    """(reference, size in bytes) of one rendered message."""
    # to_data, not dataclasses.asdict: the same JSON without asdict's deep copies.
    body = json.dumps(to_data(rendered), sort_keys=True, default=str).encode()
    return "sha256:" + hashlib.sha256(body).hexdigest()[:32], len(body)


class RenderedContents:
    def __init__(self, renderer: TemplateRenderer) -> None:
        self.renderer = renderer
        self.cache: dict[str, Rendered] = {}

    def render(self, command: RenderNotification) -> RecordRendering | RecordRenderFailure:
        try:
            data = _object(command.data)
            contents = tuple(
                self._render(command.template, _channel(c), data) for c in command.channels
            )
        except (TemplateError, ValueError) as exc:
            return RecordRenderFailure(error=str(exc))
        return RecordRendering(contents=contents)

    def get(self, ref: str, template: str, channel: str, data: str) -> Rendered:
        """The message behind `ref`, rendered again if this worker has not seen it.

        Raises TemplateError or ValueError if it cannot be rendered any more.
        """
        cached = self.cache.get(ref)
        if cached is not None:
            return cached
        rendered = self.renderer.render(template, _channel(channel), _object(data))
        again, _ = content_ref(rendered)
        if again != ref:
            log.warning("content_changed", template=template, channel=channel, recorded=ref)
        self.cache[ref] = rendered
        return rendered

    def forget(self, refs: list[str]) -> None:
        for ref in refs:
            self.cache.pop(ref, None)

    def _render(self, template: str, channel: Channel, data: dict[str, Any]) -> RenderedContent:
        rendered = self.renderer.render(template, channel, data)
        ref, size = content_ref(rendered)
        self.cache[ref] = rendered
        return RenderedContent(channel=channel, content_ref=ref, size_bytes=size)


def _channel(name: str) -> Channel:
    if name not in CHANNELS:
        raise ValueError(f"unknown channel {name!r}")
    return cast(Channel, name)


def _object(data: str) -> dict[str, Any]:
    value = json.loads(data)
    if not isinstance(value, dict):
        raise ValueError("template data must be a JSON object")
    return value
