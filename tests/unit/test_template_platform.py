"""The platform's name and links come from settings: request data cannot override `app`, and
a link it carries that leaves the platform fails the render wherever a template shows it."""

from __future__ import annotations

from typing import Any

import pytest

from aggregates.channels import CHANNELS, Channel
from infra.config.settings import Settings
from sagas.rendering import DEFAULT_TEMPLATE_ROOT, TemplateError, TemplateRenderer, load_sample
from sagas.template_platform import PlatformContext
from streams.notifier.service import template_renderer

APP_URL = "https://nexus.example.com"
EVIL = "https://nexus-login.evil.example/reset"
PLATFORM = PlatformContext(name="Nexus", url=APP_URL)


@pytest.fixture
def renderer() -> TemplateRenderer:
    return TemplateRenderer(DEFAULT_TEMPLATE_ROOT, PLATFORM)


def sample(name: str, **overrides: Any) -> dict[str, Any]:
    return load_sample(DEFAULT_TEMPLATE_ROOT, name) | overrides


def shown(renderer: TemplateRenderer, name: str, channel: Channel, data: dict[str, Any]) -> str:
    return str(renderer.render(name, channel, data))


@pytest.mark.parametrize("channel", CHANNELS)
def test_request_data_cannot_override_the_app_name_or_url(
    renderer: TemplateRenderer, channel: Channel
) -> None:
    data = sample("welcome", app={"name": "Nexus Security", "url": EVIL})

    text = shown(renderer, "welcome", channel, data)

    assert "evil" not in text and "Nexus Security" not in text
    assert "Nexus" in text


def test_the_welcome_link_is_the_platform_url(renderer: TemplateRenderer) -> None:
    rendered = renderer.render("welcome", "email", sample("welcome", app={"url": EVIL}))

    assert rendered.html is not None and f'<a href="{APP_URL}">Get started</a>' in rendered.html


def test_the_app_variables_need_not_be_in_the_request(renderer: TemplateRenderer) -> None:
    data = sample("welcome")
    del data["app"]

    rendered = renderer.render("welcome", "sms", data)

    assert rendered.text is not None and APP_URL in rendered.text


def test_the_notifier_renders_with_the_settings(tmp_path: Any) -> None:
    settings = Settings(home=tmp_path, app_name="Acme", app_url="https://acme.example")
    data = sample("welcome", app={"name": "Phish", "url": EVIL})

    rendered = template_renderer(settings).render("welcome", "email", data)

    assert rendered.subject == "Welcome to Acme, Ada Lovelace"
    assert rendered.text is not None and "https://acme.example" in rendered.text
    assert EVIL not in rendered.text


def workspace(url: object) -> dict[str, Any]:
    data = sample("workspace_member_added")
    data["workspace"]["url"] = url
    return data


@pytest.mark.parametrize("channel", ["email", "sms", "slack", "discord"])  # push shows none
def test_a_foreign_link_fails_the_render_where_it_would_be_shown(
    renderer: TemplateRenderer, channel: Channel
) -> None:
    with pytest.raises(TemplateError, match="is not on the platform's URL"):
        renderer.render("workspace_member_added", channel, workspace(EVIL))


def test_a_foreign_link_fails_a_webhook_template_too(renderer: TemplateRenderer) -> None:
    data = sample("anomaly_alert", dashboard_url=EVIL)

    with pytest.raises(TemplateError, match="is not on the platform's URL"):
        renderer.render("anomaly_alert", "webhook", data)


def test_a_foreign_link_a_template_does_not_show_is_harmless(renderer: TemplateRenderer) -> None:
    """The workspace webhook and the activity summary (its push title) show no link."""
    rendered = renderer.render("workspace_member_added", "webhook", workspace(EVIL))
    summary = renderer.summary("activity", sample("activity", target={"name": "Q3", "url": "u"}))

    assert rendered.json is not None and EVIL not in str(rendered.json)
    assert summary == "Grace Hopper commented on Q3"


def test_links_the_workflows_build_from_the_app_url_pass(renderer: TemplateRenderer) -> None:
    link = f"{APP_URL}/w/5b3c7f0e"

    rendered = renderer.render("workspace_member_added", "email", workspace(link))

    assert rendered.text is not None and link in rendered.text


@pytest.mark.parametrize(
    "link",
    [
        APP_URL,
        f"{APP_URL}/",
        f"{APP_URL}/dashboard?granularity=hour#anomalies",
        "HTTPS://NEXUS.example.com/w/1",
        "https://nexus.example.com:443/w/1",
        "https://nexus.example.com./w/1",
    ],
)
def test_links_on_the_platform(link: str) -> None:
    assert PLATFORM.owns(link)


@pytest.mark.parametrize(
    "link",
    [
        EVIL,
        "http://nexus.example.com/w/1",  # another scheme
        "https://nexus.example.com:8443/w/1",  # another port
        "https://nexus.example.com.evil.example/w/1",
        "https://nexus.example.com@evil.example/w/1",
        "https://user@nexus.example.com/w/1",
        "https://nexus.example.com\\@evil.example/",
        "https://nexus.example.com/w/1 https://evil.example",
        "//evil.example/w/1",
        "/w/1",
        "javascript:alert(1)",
        "https://[::1/",
        None,
        42,
        {"href": APP_URL},
    ],
)
def test_links_off_the_platform(link: object) -> None:
    assert not PLATFORM.owns(link)


def test_a_platform_under_a_path_owns_only_that_path() -> None:
    platform = PlatformContext("Nexus", "https://example.com/nexus/")

    assert platform.owns("https://example.com/nexus/w/1")
    assert platform.owns("https://example.com/nexus")
    assert not platform.owns("https://example.com/nexus-evil/")
    assert not platform.owns("https://example.com/")


def test_without_a_platform_the_data_is_rendered_as_given() -> None:
    """`nexus templates check` and the samples: no settings, so no override."""
    data = sample("welcome", app={"name": "Sample", "url": "https://sample.example"})

    rendered = TemplateRenderer(DEFAULT_TEMPLATE_ROOT).render("welcome", "sms", data)

    assert rendered.text is not None and "https://sample.example" in rendered.text
