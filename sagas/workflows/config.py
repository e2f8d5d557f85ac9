"""Workflows as data: parse and validate `infra/config/workflows.toml` (its header: the format).

Every error names the workflow and the field, e.g. `workflow 'welcome': data.user.name: ...`.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from aggregates.channels import CHANNELS
from sagas.workflows.expressions import (
    Condition,
    Expression,
    ExpressionError,
    parse_condition,
    parse_expression,
)

REQUIRED = ("name", "on", "template", "recipient")
OPTIONAL = ("data", "when", "channels")
_NAME = re.compile(r"[a-z][a-z0-9_-]{0,63}")
_EVENT_TYPE = re.compile(r"[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+")

# Template data: nested objects whose leaves are expressions.
DataSpec = Mapping[str, "Expression | DataSpec"]


@dataclass(frozen=True)
class Workflow:
    """One configured reaction: on an event of type `on`, notify `recipient` with `template`."""

    name: str
    on: str
    template: str
    recipient: Expression
    data: DataSpec
    when: Condition | None = None
    channels: tuple[str, ...] | None = None


class WorkflowConfigError(ValueError):
    """The configuration is invalid; the message says which workflow and field."""

    def __init__(self, workflow: str | None, field: str | None, message: str) -> None:
        where = "workflows file" if workflow is None else f"workflow {workflow}"
        super().__init__(f"{where}{f': {field}' if field else ''}: {message}")
        self.workflow, self.field, self.message = workflow, field, message


Fail = Callable[[str | None, str], WorkflowConfigError]
# What a template needs on some channels (None: all), as paths such as ("user", "name"):
# sagas.template_variables.TemplateVariables.needed.
Needs = Callable[[str, Collection[str] | None], Collection[tuple[str, ...]]]


def parse_workflows(
    text: str, *, templates: Collection[str] | None = None, needs: Needs | None = None
) -> list[Workflow]:
    """Parse the TOML; `templates`, when given, are the template names that exist, and
    `needs` what each requires of its data: a workflow whose data lacks one is refused."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise WorkflowConfigError(None, None, f"not valid TOML: {exc}") from None
    unknown = sorted(set(document) - {"workflow"})
    if unknown:
        raise WorkflowConfigError(None, None, f"unknown top-level keys {unknown}")
    entries = document.get("workflow", [])
    if not isinstance(entries, list):
        raise WorkflowConfigError(None, "workflow", "must be an array of tables [[workflow]]")
    workflows = [_workflow(index, entry, templates) for index, entry in enumerate(entries)]
    if needs is not None:
        for workflow in workflows:
            _check_data_covers(workflow, needs)
    seen: set[str] = set()
    for workflow in workflows:
        if workflow.name in seen:
            raise WorkflowConfigError(repr(workflow.name), "name", "is used twice")
        seen.add(workflow.name)
    return workflows


def _workflow(index: int, entry: Any, templates: Collection[str] | None) -> Workflow:
    if not isinstance(entry, dict):
        raise WorkflowConfigError(f"#{index + 1}", None, "must be a table")
    label = repr(entry["name"]) if isinstance(entry.get("name"), str) else f"#{index + 1}"

    def fail(field: str | None, message: str) -> WorkflowConfigError:
        return WorkflowConfigError(label, field, message)

    _check_plain_fields(entry, fail, templates)
    return Workflow(
        name=entry["name"],
        on=entry["on"],
        template=entry["template"],
        recipient=_expression(entry["recipient"], "recipient", fail),
        data=_data(entry.get("data", {}), "data", fail),
        when=_condition(entry.get("when"), fail),
        channels=_channels(entry.get("channels"), fail),
    )


def _check_plain_fields(
    entry: dict[str, Any], fail: Fail, templates: Collection[str] | None
) -> None:
    unknown = sorted(set(entry) - set(REQUIRED) - set(OPTIONAL))
    if unknown:
        raise fail(None, f"unknown keys {unknown} (allowed: {', '.join(REQUIRED + OPTIONAL)})")
    for field in REQUIRED:
        if not isinstance(entry.get(field), str) or not entry[field].strip():
            raise fail(field, "is required and must be a non-empty string")
    if not _NAME.fullmatch(entry["name"]):
        raise fail("name", "must be 1-64 of a-z, 0-9, _ and -, starting with a letter")
    if not _EVENT_TYPE.fullmatch(entry["on"]):
        raise fail("on", f"{entry['on']!r} is not an event type like user.registered")
    if templates is not None and entry["template"] not in templates:
        raise fail("template", f"no template {entry['template']!r} in {sorted(templates)}")


def _expression(source: Any, field: str, fail: Fail) -> Expression:
    if not isinstance(source, str):
        raise fail(field, f"must be an expression string, not {type(source).__name__}")
    try:
        return parse_expression(source)
    except ExpressionError as exc:
        raise fail(field, f"{source!r}: {exc}") from None


def _data(spec: Any, field: str, fail: Fail) -> DataSpec:
    if not isinstance(spec, dict):
        raise fail(field, "must be a table of expressions")
    return {
        key: _data(value, f"{field}.{key}", fail)
        if isinstance(value, dict)
        else _expression(value, f"{field}.{key}", fail)
        for key, value in spec.items()
    }


def _condition(source: Any, fail: Fail) -> Condition | None:
    if source is None:
        return None
    if not isinstance(source, str):
        raise fail("when", 'must be a condition string like "a != b"')
    try:
        return parse_condition(source)
    except ExpressionError as exc:
        raise fail("when", f"{source!r}: {exc}") from None


def _channels(value: Any, fail: Fail) -> tuple[str, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise fail("channels", "must be a non-empty list of channel names")
    unknown = sorted(set(value) - set(CHANNELS))
    if unknown:
        raise fail("channels", f"unknown channels {unknown} (known: {', '.join(CHANNELS)})")
    return tuple(value)


def _check_data_covers(workflow: Workflow, needs: Needs) -> None:
    """Every variable the template needs on the workflow's channels is given by `data`,
    itself or as part of an object an expression gives, so no planned request can fail
    to render for want of one."""
    given = list(_paths(workflow.data))
    missing = [
        ".".join(variable)
        for variable in sorted(needs(workflow.template, workflow.channels))
        if not any(variable[: len(path)] == path for path in given)
    ]
    if missing:
        detail = f"template {workflow.template!r} needs {', '.join(missing)}"
        raise WorkflowConfigError(repr(workflow.name), "data", detail)


def _paths(spec: DataSpec, above: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for key, value in spec.items():
        if isinstance(value, Mapping):
            yield from _paths(value, (*above, key))
        else:
            yield (*above, key)
