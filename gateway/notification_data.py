"""A notification's template data, checked when it is requested rather than when it renders.

The variables a template needs come from its files (sagas.template_variables); a request
missing one, or showing a link off the platform, is refused with 422 and a JSON pointer per
field, so a client learns it at once instead of from a saga that gave up (`render_failed`).
"""

from __future__ import annotations

import functools
from collections.abc import Collection
from pathlib import Path
from typing import Any

from infra.config.settings import Settings
from sagas.template_platform import PlatformContext
from sagas.template_variables import (
    TemplateVariables,
    foreign_link_pointers,
    missing_pointers,
)

MISSING = "is required by the template"


@functools.cache
def template_variables(root: Path) -> TemplateVariables:
    """The variables of the templates in `root`, derived once per channel file: templates
    do not change while the gateway runs."""
    return TemplateVariables(root)


def data_errors(
    settings: Settings, template: str, channels: Collection[str] | None, data: Any
) -> list[tuple[str, str]]:
    """(pointer, detail) for each variable `template` needs on `channels` that `data`
    lacks, and for each link it would show that leaves NEXUS_APP_URL."""
    needed = template_variables(settings.templates_dir).needed(template, channels)
    platform = PlatformContext(name=settings.app_name, url=settings.app_url)
    errors = [(pointer, MISSING) for pointer in missing_pointers(needed, data)]
    off_site = f"must be a link under {settings.app_url}, the app's URL"
    errors += [(pointer, off_site) for pointer in foreign_link_pointers(needed, data, platform)]
    return errors
