"""Template metadata (`meta.json`): which templates are critical, defaults and bad files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateway.notifications import critical_templates
from sagas.rendering import (
    DEFAULT_TEMPLATE_ROOT,
    TemplateError,
    TemplateMeta,
    TemplateProblem,
    TemplateRenderer,
    check_templates,
)


def copy_template(root: Path, source: str, name: str, meta: str | None) -> TemplateRenderer:
    """A copy of shipped template `source` as `name` under `root`, with `meta` as meta.json."""
    folder = root / name
    folder.mkdir()
    for file in (DEFAULT_TEMPLATE_ROOT / source).iterdir():
        if file.name != "meta.json":
            (folder / file.name).write_bytes(file.read_bytes())
    if meta is not None:
        (folder / "meta.json").write_text(meta, encoding="utf-8")
    return TemplateRenderer(root)


@pytest.mark.parametrize(
    ("name", "critical"),
    [
        ("anomaly_alert", True),
        ("welcome", False),
        ("workspace_member_added", False),
        ("workspace_member_added_owner", False),
    ],
)
def test_shipped_templates_declare_whether_they_are_critical(name: str, critical: bool) -> None:
    meta = TemplateRenderer(DEFAULT_TEMPLATE_ROOT).meta(name)

    assert meta.critical is critical
    assert meta.description.strip() == meta.description != ""
    assert set(json.loads((DEFAULT_TEMPLATE_ROOT / name / "meta.json").read_text())) == {
        "critical",
        "description",
    }


def test_meta_is_frozen() -> None:
    meta = TemplateMeta(critical=True, description="x")

    with pytest.raises(AttributeError):
        meta.critical = False  # type: ignore[misc]


def test_a_template_without_meta_json_is_not_critical(tmp_path: Path) -> None:
    renderer = copy_template(tmp_path, "welcome", "plain", meta=None)

    assert renderer.meta("plain") == TemplateMeta(critical=False, description="")
    assert check_templates(tmp_path) == []


def test_meta_json_may_leave_out_the_description(tmp_path: Path) -> None:
    renderer = copy_template(tmp_path, "welcome", "t", meta='{"critical": true}')

    assert renderer.meta("t") == TemplateMeta(critical=True, description="")


@pytest.mark.parametrize(
    ("meta", "message"),
    [
        ("{not json", "bad meta.json: Expecting property name"),
        ('["critical"]', "bad meta.json: must hold a JSON object"),
        ('{"critical": "yes"}', "bad meta.json: critical, digest, internal must be true or false"),
        ('{"critical": 1}', "bad meta.json: critical, digest, internal must be true or false"),
        (
            '{"critical": false, "description": 3}',
            "bad meta.json: critical, digest, internal must be true or false",
        ),
        ('{"digest": "no"}', "bad meta.json: critical, digest, internal must be true or false"),
        ('{"internal": null}', "bad meta.json: critical, digest, internal must be true or false"),
        ('{"crtical": true}', "bad meta.json: unknown keys ['crtical']"),
    ],
)
def test_a_malformed_meta_json_raises_and_is_a_check_problem(
    tmp_path: Path, meta: str, message: str
) -> None:
    renderer = copy_template(tmp_path, "welcome", "t", meta=meta)

    with pytest.raises(TemplateError) as caught:
        renderer.meta("t")

    assert (caught.value.template, caught.value.channel) == ("t", None)
    assert caught.value.message.startswith(message)
    assert check_templates(tmp_path) == [TemplateProblem("t", None, caught.value.message)]


def test_meta_of_an_unknown_or_unsafe_name_raises(tmp_path: Path) -> None:
    renderer = copy_template(tmp_path, "welcome", "t", meta=None)

    for name in ("missing", "../t", ".hidden"):
        with pytest.raises(TemplateError, match="no such template"):
            renderer.meta(name)


def test_internal_templates_are_not_requestable(tmp_path: Path) -> None:
    copy_template(tmp_path, "welcome", "public", meta=None)
    renderer = copy_template(tmp_path, "digest", "private", meta='{"internal": true}')

    assert renderer.templates() == ["private", "public"]
    assert renderer.requestable() == ["public"]


def test_of_the_shipped_templates_only_the_digest_is_internal() -> None:
    renderer = TemplateRenderer(DEFAULT_TEMPLATE_ROOT)

    assert set(renderer.templates()) - set(renderer.requestable()) == {"digest"}


def test_of_the_shipped_templates_only_anomaly_alert_needs_an_operator_over_http() -> None:
    """The gateway asks for `notifications:send` before it takes a critical template."""
    assert critical_templates(DEFAULT_TEMPLATE_ROOT) == frozenset({"anomaly_alert"})


def test_an_internal_critical_template_is_not_listed_as_requestable(tmp_path: Path) -> None:
    copy_template(tmp_path, "anomaly_alert", "alert", meta='{"critical": true}')
    copy_template(tmp_path, "digest", "hidden", meta='{"critical": true, "internal": true}')

    assert critical_templates(tmp_path) == frozenset({"alert"})
