"""Template rendering: shipped templates, strict variables, escaping, JSON safety, sandbox."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aggregates.channels import CHANNELS, Channel
from sagas.rendering import (
    DEFAULT_TEMPLATE_ROOT,
    TemplateError,
    TemplateRenderer,
    check_templates,
    load_sample,
)

SHIPPED = [
    "activity",
    "anomaly_alert",
    "digest",
    "welcome",
    "workspace_member_added",
    "workspace_member_added_owner",
]


@pytest.fixture
def renderer() -> TemplateRenderer:
    return TemplateRenderer(DEFAULT_TEMPLATE_ROOT)


def write_template(root: Path, files: dict[str, str], sample: object = None) -> TemplateRenderer:
    folder = root / "t"
    folder.mkdir()
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    if sample is not None:
        (folder / "sample.json").write_text(json.dumps(sample), encoding="utf-8")
    return TemplateRenderer(root)


def test_the_shipped_templates_are_exactly_these(renderer: TemplateRenderer) -> None:
    assert renderer.templates() == SHIPPED


@pytest.mark.parametrize("channel", CHANNELS)
@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_template_renders_with_its_sample(
    renderer: TemplateRenderer, name: str, channel: Channel
) -> None:
    rendered = renderer.render(name, channel, load_sample(DEFAULT_TEMPLATE_ROOT, name))

    assert rendered.channel == channel
    match channel:
        case "email":
            assert rendered.subject and rendered.text and rendered.html
            assert "\n" not in rendered.subject
        case "push":
            assert rendered.title and rendered.body
        case "webhook":
            assert rendered.json and rendered.json["template"] == name
        case _:
            assert rendered.text


def test_check_templates_finds_no_problem_in_the_shipped_templates() -> None:
    assert check_templates(DEFAULT_TEMPLATE_ROOT) == []


def test_check_templates_reports_missing_files_and_variables(tmp_path: Path) -> None:
    write_template(tmp_path, {"sms.j2": "Hi {{ user.name }}"}, sample={"user": {}})

    problems = {(p.template, p.channel): p.message for p in check_templates(tmp_path)}

    assert "undefined variable" in problems[("t", "sms")]
    assert problems[("t", "email")].startswith("missing email.subject.j2")
    assert len(problems) == len(CHANNELS)


def test_a_missing_variable_raises_and_names_it(renderer: TemplateRenderer) -> None:
    with pytest.raises(TemplateError) as caught:
        renderer.render("welcome", "sms", {"user": {"name": "Ada"}})

    assert (caught.value.template, caught.value.channel, caught.value.variable) == (
        "welcome",
        "sms",
        "app",
    )


def test_a_missing_attribute_raises_instead_of_rendering_empty(tmp_path: Path) -> None:
    renderer = write_template(tmp_path, {"sms.j2": "Hi {{ user.name }}!"})

    with pytest.raises(TemplateError) as caught:
        renderer.render("t", "sms", {"user": {"email": "a@example.com"}})

    assert caught.value.variable == "name"


def test_data_is_escaped_in_html_but_not_in_text(renderer: TemplateRenderer) -> None:
    data = load_sample(DEFAULT_TEMPLATE_ROOT, "welcome")
    data["user"]["name"] = "<script>alert(1)</script>"

    rendered = renderer.render("welcome", "email", data)

    assert rendered.html is not None and rendered.text is not None
    assert "<script>" not in rendered.html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in rendered.html
    assert "<script>alert(1)</script>" in rendered.text


def test_a_subject_is_folded_onto_one_line(renderer: TemplateRenderer) -> None:
    data = load_sample(DEFAULT_TEMPLATE_ROOT, "welcome")
    data["user"]["name"] = "Ada\r\nBcc: victim@example.com"

    rendered = renderer.render("welcome", "email", data)

    assert rendered.subject == "Welcome to Nexus, Ada Bcc: victim@example.com"


def test_webhook_output_is_json_and_data_cannot_break_out(renderer: TemplateRenderer) -> None:
    data = load_sample(DEFAULT_TEMPLATE_ROOT, "welcome")
    hostile = 'Ada", "admin": true, "x": "\\ </script> \u2028'
    data["user"]["name"] = hostile

    rendered = renderer.render("welcome", "webhook", data)

    assert rendered.json is not None
    assert rendered.json["user"]["name"] == hostile
    assert "admin" not in rendered.json


def test_a_quoted_expression_in_a_webhook_template_is_an_error(tmp_path: Path) -> None:
    renderer = write_template(tmp_path, {"webhook.json.j2": '{"name": "{{ name }}"}'})

    with pytest.raises(TemplateError, match="not valid JSON"):
        renderer.render("t", "webhook", {"name": 'a", "admin": true, "b": "'})


def test_a_webhook_template_must_render_an_object(tmp_path: Path) -> None:
    renderer = write_template(tmp_path, {"webhook.json.j2": "[{{ name }}]"})

    with pytest.raises(TemplateError, match="JSON object"):
        renderer.render("t", "webhook", {"name": "x"})


def test_a_missing_variable_in_a_webhook_template_raises(tmp_path: Path) -> None:
    renderer = write_template(tmp_path, {"webhook.json.j2": '{"name": {{ name }}}'})

    with pytest.raises(TemplateError) as caught:
        renderer.render("t", "webhook", {})

    assert caught.value.variable == "name"


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ user.__dict__ }}",
    ],
)
def test_the_sandbox_blocks_attribute_access(tmp_path: Path, source: str) -> None:
    renderer = write_template(tmp_path, {"sms.j2": source})

    with pytest.raises(TemplateError) as caught:
        renderer.render("t", "sms", {"user": object()})

    assert caught.value.channel == "sms"
    assert "unsafe" in str(caught.value) or "undefined" in str(caught.value)


def test_an_unknown_template_or_path_traversal_is_a_template_error(
    renderer: TemplateRenderer,
) -> None:
    with pytest.raises(TemplateError, match="not found"):
        renderer.render("nope", "sms", {})
    with pytest.raises(TemplateError, match="invalid template name"):
        renderer.render("../templates", "sms", {})
