"""The variables each notification template needs, derived from its Jinja files.

A template declares what it needs by using it: every `{{ user.name }}` in one of its
channel files is a variable `("user", "name")` the request data must hold, because the
renderer's StrictUndefined fails on a missing one. Derived from the files themselves, the
declaration cannot drift from what renders; `sample.json` must hold every one of them (a
test and `nexus templates check` render every channel with it), so the sample documents it.

- Per channel: a request naming channels needs only theirs; without channels, all.
- Names a loop or `set` binds are the template's own; their elements are not checked.
- A variable tested with `is defined` anywhere in a file, or used through the `default`
  filter, is optional.
- The platform's own variables (`app`) come from settings, never from the request.

Callers check data with `missing_pointers`, which names each missing variable as a JSON
pointer into the request body (`/data/user/name`), so the gateway answers 422 at once and
workflows are refused at load, instead of a saga that gives up with `render_failed`.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from functools import cache
from pathlib import Path
from typing import Any

import jinja2
from jinja2 import meta, nodes

from aggregates.channels import CHANNELS, Channel
from sagas.rendering import CHANNEL_FILES
from sagas.template_platform import PLATFORM_VARIABLES, PlatformContext, is_link_key

Variable = tuple[str, ...]  # ("user", "name") is data.user.name
_OPTIONAL_TESTS = frozenset({"defined", "undefined"})
_OPTIONAL_FILTERS = frozenset({"default", "d"})


class TemplateVariables:
    """The variables of the templates under one folder, per template and channel."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(root)))

    def needed(self, name: str, channels: Collection[str] | None = None) -> frozenset[Variable]:
        """What template `name` needs for `channels` (None: every channel it has)."""
        wanted = CHANNELS if channels is None else [c for c in CHANNELS if c in channels]
        found = set().union(*(self._channel(name, channel) for channel in wanted))
        return frozenset(_deepest(found))

    @cache  # noqa: B019 (one instance per templates folder; templates do not change)
    def _channel(self, name: str, channel: Channel) -> frozenset[Variable]:
        found: set[Variable] = set()
        for filename in CHANNEL_FILES[channel]:
            if (self.root / name / filename).is_file():
                found |= file_variables(self._env, f"{name}/{filename}")
        return frozenset(found)


def file_variables(env: jinja2.Environment, template: str) -> set[Variable]:
    """The request variables one template file uses (see the module's rules)."""
    source, _, _ = env.loader.get_source(env, template)  # type: ignore[union-attr]
    tree = env.parse(source)
    roots = meta.find_undeclared_variables(tree) - PLATFORM_VARIABLES
    guarded = [
        chain
        for test in tree.find_all(nodes.Test)
        if test.name in _OPTIONAL_TESTS and (chain := _chain(test.node)) is not None
    ]
    return {use for use in _uses(tree, roots) if not provides(guarded, use)}


def missing_pointers(needed: Collection[Variable], data: Any, prefix: str = "/data") -> list[str]:
    """A JSON pointer (under `prefix`) for each variable in `needed` that `data` lacks."""
    return [_pointer(prefix, v) for v in sorted(needed) if not _holds(data, v)]


def provides(given: Collection[Variable], variable: Variable) -> bool:
    """Whether data built from `given` paths holds `variable`: a path giving the variable
    itself or an object above it (whose contents are then the data's business)."""
    return any(variable[: len(path)] == path for path in given)


def _holds(data: Any, variable: Variable) -> bool:
    value = data
    for part in variable:
        if not isinstance(value, Mapping) or part not in value:
            return False
        value = value[part]
    return True


def _uses(node: nodes.Node, roots: frozenset[str] | set[str]) -> Iterator[Variable]:
    chain = _chain(node)
    if chain is not None:
        if chain[0] in roots:
            yield chain
        return
    if isinstance(node, nodes.Test) and node.name in _OPTIONAL_TESTS:
        return
    if isinstance(node, nodes.Filter) and node.name in _OPTIONAL_FILTERS:
        children: list[nodes.Node] = [*node.args, *node.kwargs]
    elif isinstance(node, nodes.Call) and isinstance(node.node, nodes.Getattr):
        children = [node.node.node, *node.args, *node.kwargs]  # a method: its object is used
    else:
        children = list(node.iter_child_nodes())
    for child in children:
        yield from _uses(child, roots)


def _chain(node: nodes.Node) -> Variable | None:
    """("user", "name") for `user.name` or `user["name"]`; None for anything else."""
    if isinstance(node, nodes.Name) and node.ctx == "load":
        return (node.name,)
    if isinstance(node, nodes.Getattr):
        above = _chain(node.node)
        return None if above is None else (*above, node.attr)
    if isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
        above = _chain(node.node)
        key = node.arg.value
        return None if above is None or not isinstance(key, str) else (*above, key)
    return None


def _deepest(found: set[Variable]) -> Iterator[Variable]:
    """Drop a variable whose parts are needed too: `user.name` says `user` is needed."""
    for variable in found:
        if not any(len(other) > len(variable) and provides([variable], other) for other in found):
            yield variable


def _pointer(prefix: str, variable: Variable) -> str:
    """A JSON pointer (RFC 6901): "~" and "/" in a name are escaped."""
    return prefix + "".join("/" + p.replace("~", "~0").replace("/", "~1") for p in variable)


def foreign_link_pointers(
    needed: Collection[Variable], data: Any, platform: PlatformContext, prefix: str = "/data"
) -> list[str]:
    """Pointers to the links among `needed` that lie off the platform: the renderer would
    refuse to show them (template_platform), so they are refused with the request."""
    return [
        _pointer(prefix, variable)
        for variable in sorted(needed)
        if is_link_key(variable[-1])
        and _holds(data, variable)
        and not platform.owns(_value(data, variable))
    ]


def _value(data: Any, variable: Variable) -> Any:
    for part in variable:
        data = data[part]
    return data
