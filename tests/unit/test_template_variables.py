"""The variables a template needs, derived from its files, and who must provide them.

Requests are checked against them at once (issue 12, part 5), and so are workflows, when
their configuration is loaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from infra.config.settings import PROJECT_ROOT
from sagas.rendering import DEFAULT_TEMPLATE_ROOT, TemplateRenderer, load_sample
from sagas.template_platform import PlatformContext
from sagas.template_variables import (
    TemplateVariables,
    foreign_link_pointers,
    missing_pointers,
)
from sagas.workflows import WorkflowConfigError, parse_workflows

SHIPPED = TemplateVariables(DEFAULT_TEMPLATE_ROOT)
REQUESTABLE = TemplateRenderer(DEFAULT_TEMPLATE_ROOT).requestable()
WORKFLOWS = (PROJECT_ROOT / "infra" / "config" / "workflows.toml").read_text()


def test_welcome_needs_the_users_name_and_email_and_never_the_platforms_app() -> None:
    assert SHIPPED.needed("welcome") == {("user", "name"), ("user", "email")}
    assert SHIPPED.needed("welcome", ["push"]) == {("user", "name")}  # push shows no email


def test_the_visions_example_is_refused_naming_each_missing_field() -> None:
    """sendNotification({userId, template: "welcome", data: {name: "John"}})."""
    needed = SHIPPED.needed("welcome", ["email", "push", "slack"])
    assert missing_pointers(needed, {"name": "John"}) == ["/data/user/email", "/data/user/name"]
    data = {"user": {"name": "John", "email": "john@example.com"}}
    assert missing_pointers(needed, data) == []


@pytest.mark.parametrize("template", REQUESTABLE)
def test_every_sample_holds_what_its_template_needs(template: str) -> None:
    sample = load_sample(DEFAULT_TEMPLATE_ROOT, template)
    assert SHIPPED.needed(template) and missing_pointers(SHIPPED.needed(template), sample) == []


def test_each_missing_variable_is_named_even_under_a_missing_object() -> None:
    needed = SHIPPED.needed("workspace_member_added")
    assert missing_pointers(needed, {"role": "member", "workspace": "w-1"}) == [
        "/data/member/name",
        "/data/owner/name",
        "/data/workspace/id",
        "/data/workspace/name",
        "/data/workspace/url",
    ]


def write(root: Path, files: dict[str, str]) -> TemplateVariables:
    (root / "t").mkdir()
    for name, text in files.items():
        (root / "t" / name).write_text(text)
    return TemplateVariables(root)


def test_loops_guards_defaults_and_subscripts(tmp_path: Path) -> None:
    source = (
        "{% set greeting = 'Hi' %}{{ greeting }} {{ who['first name'] }}"
        "{% for item in items %}{{ item.title }} {{ loop.index }}{% endfor %}"
        "{% if nick is defined %}{{ nick }}{% endif %}{{ motto | default('-') }}"
        "{{ tags.keys() | list }}{{ rows[index] }}{{ app.name }}"
    )
    variables = write(tmp_path, {"sms.j2": source})
    assert variables.needed("t") == {
        ("who", "first name"),
        ("items",),
        ("tags",),
        ("rows",),
        ("index",),
    }
    assert missing_pointers({("a/b", "c~d")}, {}) == ["/data/a~1b/c~0d"]


def test_a_null_value_is_present_but_a_scalar_has_no_fields() -> None:
    needed = {("user", "name")}
    assert missing_pointers(needed, {"user": {"name": None}}) == []
    assert missing_pointers(needed, {"user": "Ada"}) == ["/data/user/name"]


def test_links_the_template_shows_must_stay_on_the_platform() -> None:
    platform = PlatformContext("Nexus", "https://nexus.example.com")
    needed = SHIPPED.needed("activity")
    data: dict[str, Any] = {"target": {"url": "https://evil.example/x"}}
    assert foreign_link_pointers(needed, data, platform) == ["/data/target/url"]
    data["target"]["url"] = "https://nexus.example.com/d/1"
    assert foreign_link_pointers(needed, data, platform) == []


def test_the_shipped_workflows_provide_every_variable_of_their_templates() -> None:
    workflows = parse_workflows(WORKFLOWS, templates=REQUESTABLE, needs=SHIPPED.needed)
    assert [w.name for w in workflows] == [
        "welcome",
        "member-added",
        "member-added-owner",
        "anomaly-alert",
    ]


def test_a_workflow_missing_a_variable_is_refused_at_load() -> None:
    config = WORKFLOWS.replace('user.email = "user(event.aggregate_id).email"\n', "")
    with pytest.raises(WorkflowConfigError, match="'welcome': data: .*needs user.email"):
        parse_workflows(config, templates=REQUESTABLE, needs=SHIPPED.needed)


def test_a_workflow_giving_a_whole_object_provides_its_fields() -> None:
    config = (
        '[[workflow]]\nname = "w"\non = "user.registered"\ntemplate = "welcome"\n'
        'recipient = "event.aggregate_id"\nchannels = ["push"]\n'
        '[workflow.data]\nuser = "event.data"\n'
    )
    [workflow] = parse_workflows(config, templates=REQUESTABLE, needs=SHIPPED.needed)
    assert workflow.channels == ("push",)
