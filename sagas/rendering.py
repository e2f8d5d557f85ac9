"""Render notification templates (`templates/<name>/`) into per-channel messages.

Templates run in jinja2's sandbox with StrictUndefined, so a missing variable is an error at
render time and never an empty string. Only `*.html.j2` files are HTML-autoescaped. In
`webhook.json.j2` every `{{ expression }}` is emitted as a JSON value (already quoted and
escaped), so data can never break out of a string or inject keys; the output must parse as a
JSON object. Subjects and push titles are folded onto one line (no header injection).
A template's optional `meta.json` (`{"critical": bool, "digest": bool, "internal": bool,
"description": str}`) marks the templates that bypass users' opt-outs and quiet hours, the
low-priority ones that are collapsed into a digest per user and window, and the ones only the
platform itself sends (the digest), which clients and workflows cannot request.
Given a `PlatformContext` (the notifier passes one from settings), `app.name`, `app.url` and
the links in the data are the platform's, whatever the request says (`template_platform`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment
from markupsafe import Markup

from aggregates.channels import CHANNELS, Channel
from sagas.template_platform import ForeignLink, PlatformContext

# The files each channel needs, in the order they are rendered.
CHANNEL_FILES: dict[Channel, tuple[str, ...]] = {
    "email": ("email.subject.j2", "email.txt.j2", "email.html.j2"),
    "sms": ("sms.j2",),
    "push": ("push.title.j2", "push.body.j2"),
    "slack": ("slack.j2",),
    "discord": ("discord.j2",),
    "webhook": ("webhook.json.j2",),
}
SAMPLE_FILE = "sample.json"
META_FILE = "meta.json"
DEFAULT_TEMPLATE_ROOT = Path(__file__).resolve().parent.parent / "templates"

_UNDEFINED_NAME = re.compile(r"'([^']+)' is undefined|has no attribute '([^']+)'")


@dataclass(frozen=True)
class Rendered:
    """One template rendered for one channel; fields a channel does not use stay None."""

    channel: Channel
    subject: str | None = None
    text: str | None = None
    html: str | None = None
    title: str | None = None
    body: str | None = None
    json: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class TemplateProblem:
    """Why one template/channel failed `check_templates`."""

    template: str
    channel: str | None
    message: str


@dataclass(frozen=True)
class TemplateMeta:
    """A template's `meta.json`; critical templates bypass users' opt-outs and quiet hours,
    digest ones are collected into one message per user and window."""

    critical: bool = False
    digest: bool = False
    internal: bool = False
    description: str = ""


class TemplateError(Exception):
    """A template could not be rendered; names the template, channel and missing variable."""

    def __init__(
        self, template: str, channel: str | None, message: str, variable: str | None = None
    ) -> None:
        where = f"{template}/{channel}" if channel else template
        super().__init__(f"{where}: {message}")
        self.template = template
        self.channel = channel
        self.variable = variable
        self.message = message


def _json_value(value: object) -> object:
    """Finalize hook for webhook templates: every expression becomes a JSON literal."""
    if isinstance(value, jinja2.Undefined | ForeignLink):
        str(value)  # StrictUndefined raises UndefinedError here, ForeignLink ValueError
    if isinstance(value, Markup):  # already JSON, e.g. `x | tojson`
        return value
    return _json_literal(value)


# One encoder: json.dumps builds a new one per call for any non-default option.
_json_literal = json.JSONEncoder(ensure_ascii=False).encode


def _one_line(value: str) -> str:
    return " ".join(value.split())


def _autoescape(name: str | None) -> bool:
    return name is not None and name.endswith(".html.j2")


class TemplateRenderer:
    """Renders `templates/<name>/<channel files>` with caller-supplied data; with a
    `platform`, its values win over the data's (see `template_platform`)."""

    def __init__(
        self, root: Path = DEFAULT_TEMPLATE_ROOT, platform: PlatformContext | None = None
    ) -> None:
        self.root = root
        self.platform = platform
        loader = jinja2.FileSystemLoader(str(root))
        common: dict[str, Any] = {
            "loader": loader,
            "undefined": jinja2.StrictUndefined,
            "keep_trailing_newline": False,
        }
        self._env = SandboxedEnvironment(autoescape=_autoescape, **common)
        self._json_env = SandboxedEnvironment(autoescape=False, finalize=_json_value, **common)
        self._meta: dict[str, TemplateMeta] = {}  # templates do not change while we run

    def templates(self) -> list[str]:
        """Names of the template directories under the root."""
        return sorted(p.name for p in self.root.iterdir() if p.is_dir())

    def requestable(self) -> list[str]:
        """The templates clients and workflows may ask for: all but the internal ones."""
        return [name for name in self.templates() if not self.meta(name).internal]

    def channels(self, name: str) -> list[Channel]:
        """Channels for which template `name` has at least one file."""
        folder = self.root / name
        return [c for c in CHANNELS if any((folder / f).is_file() for f in CHANNEL_FILES[c])]

    def meta(self, name: str) -> TemplateMeta:
        """Template `name`'s meta.json; the defaults when it has none. Raises TemplateError."""
        if (known := self._meta.get(name)) is None:
            known = self._meta[name] = self._read_meta(name)
        return known

    def summary(self, name: str, data: Mapping[str, Any]) -> str:
        """One line naming a notification in a digest: its push title, else its name."""
        try:
            return _one_line(self._render_file(name, "push", "push.title.j2", data))
        except TemplateError:
            return name

    def _read_meta(self, name: str) -> TemplateMeta:
        folder = self.root / name
        if "/" in name or "\\" in name or name.startswith(".") or not folder.is_dir():
            raise TemplateError(name, None, "no such template")
        try:
            text = (folder / META_FILE).read_text(encoding="utf-8")
        except FileNotFoundError:
            return TemplateMeta()
        except (OSError, UnicodeDecodeError) as exc:
            raise TemplateError(name, None, f"bad {META_FILE}: {exc}") from exc
        return _parse_meta(name, text)

    def render(self, name: str, channel: Channel, data: Mapping[str, Any]) -> Rendered:
        """Render template `name` for `channel`; raises TemplateError on any failure."""
        if "/" in name or "\\" in name or name.startswith("."):
            raise TemplateError(name, channel, "invalid template name")
        parts = [self._render_file(name, channel, f, data) for f in CHANNEL_FILES[channel]]
        match channel:
            case "email":
                return Rendered(channel, subject=_one_line(parts[0]), text=parts[1], html=parts[2])
            case "push":
                return Rendered(channel, title=_one_line(parts[0]), body=parts[1])
            case "webhook":
                return Rendered(channel, json=self._parse_json(name, parts[0]))
            case _:
                return Rendered(channel, text=parts[0])

    def _render_file(
        self, name: str, channel: Channel, filename: str, data: Mapping[str, Any]
    ) -> str:
        env = self._json_env if filename.endswith(".json.j2") else self._env
        try:
            context = self.platform.apply(data) if self.platform else dict(data)
            return env.get_template(f"{name}/{filename}").render(context).strip()
        except jinja2.UndefinedError as exc:
            found = _UNDEFINED_NAME.search(str(exc))
            variable = next((g for g in found.groups() if g), None) if found else None
            raise TemplateError(name, channel, f"undefined variable: {exc}", variable) from exc
        except jinja2.TemplateNotFound as exc:
            raise TemplateError(name, channel, f"template file not found: {exc}") from exc
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateError(name, channel, f"syntax error line {exc.lineno}: {exc}") from exc
        except (jinja2.TemplateError, TypeError, ValueError) as exc:
            # SecurityError (sandbox) is a jinja2.TemplateError too.
            raise TemplateError(name, channel, f"{type(exc).__name__}: {exc}") from exc

    @staticmethod
    def _parse_json(name: str, text: str) -> Mapping[str, Any]:
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise TemplateError(name, "webhook", f"output is not valid JSON: {exc}") from exc
        if not isinstance(value, dict):
            raise TemplateError(name, "webhook", "output must be a JSON object")
        return value


FLAGS = ("critical", "digest", "internal")


def _parse_meta(name: str, text: str) -> TemplateMeta:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise TemplateError(name, None, f"bad {META_FILE}: {exc}") from exc
    if not isinstance(value, dict):
        raise TemplateError(name, None, f"bad {META_FILE}: must hold a JSON object")
    unknown = sorted(set(value) - {*FLAGS, "description"})
    if unknown:
        raise TemplateError(name, None, f"bad {META_FILE}: unknown keys {unknown}")
    flags = {flag: value.get(flag, False) for flag in FLAGS}
    description = value.get("description", "")
    if not all(isinstance(v, bool) for v in flags.values()) or not isinstance(description, str):
        raise TemplateError(
            name,
            None,
            f"bad {META_FILE}: {', '.join(FLAGS)} must be true or false, description a string",
        )
    return TemplateMeta(**flags, description=description)


def load_sample(root: Path, name: str) -> dict[str, Any]:
    """The sample data of template `name` (its `sample.json`)."""
    value = json.loads((root / name / SAMPLE_FILE).read_text(encoding="utf-8"))
    if not isinstance(value, dict):
        raise ValueError(f"{name}/{SAMPLE_FILE} must hold a JSON object")
    return value


def check_templates(root: Path = DEFAULT_TEMPLATE_ROOT) -> list[TemplateProblem]:
    """Render every template for every channel with its sample data; [] when all is well."""
    renderer = TemplateRenderer(root)
    problems: list[TemplateProblem] = []
    for name in renderer.templates():
        try:
            renderer.meta(name)
        except TemplateError as exc:
            problems.append(TemplateProblem(name, None, exc.message))
        try:
            sample = load_sample(root, name)
        except (OSError, ValueError) as exc:
            problems.append(TemplateProblem(name, None, f"bad {SAMPLE_FILE}: {exc}"))
            continue
        for channel in CHANNELS:
            missing = [f for f in CHANNEL_FILES[channel] if not (root / name / f).is_file()]
            if missing:
                problems.append(TemplateProblem(name, channel, f"missing {', '.join(missing)}"))
                continue
            try:
                renderer.render(name, channel, sample)
            except TemplateError as exc:
                problems.append(TemplateProblem(name, channel, exc.message))
    return problems
