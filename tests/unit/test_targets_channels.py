"""URL and payload construction per channel; the only coverage for Slack, Discord and SMS,
which have no local receiver. apprise parses each URL back to check it means what we built."""

from __future__ import annotations

from typing import Any

import apprise
import pytest

from aggregates.channels import Channel
from sagas.adapters import apprise_urls as urls
from sagas.adapters.apprise_notifier import AppriseNotifier
from sagas.adapters.config import DeliveryConfig, NtfyConfig, SmtpConfig, TwilioConfig
from sagas.adapters.targets import TargetGuard
from sagas.rendering import DEFAULT_TEMPLATE_ROOT, Rendered, TemplateRenderer, load_sample

SLACK = "https://hooks.slack.com/services/T1ABCDEFG/B1ABCDEFG/abcdefghijklmnopqrstuvwx"
DISCORD = "https://discord.com/api/webhooks/123456789012345678/abcDEF_ghi-jkl"
TWILIO = TwilioConfig("AC" + "a" * 32, "t" * 32, "+15551234567")


def rendered(channel: Channel) -> Rendered:
    sample = load_sample(DEFAULT_TEMPLATE_ROOT, "anomaly_alert")
    return TemplateRenderer().render("anomaly_alert", channel, sample)


def parsed(url: str) -> Any:
    plugin = apprise.Apprise.instantiate(url)
    assert plugin is not None, url
    return plugin


def test_slack_webhook_becomes_a_slack_url_with_the_markdown_text() -> None:
    message = urls.slack_message(SLACK, rendered("slack"), timeout=3)

    plugin = parsed(message.url)
    assert type(plugin).__name__ == "NotifySlack"
    assert (plugin.token_a, plugin.token_b, plugin.token_c) == (
        "T1ABCDEFG",
        "B1ABCDEFG",
        "abcdefghijklmnopqrstuvwx",
    )
    assert plugin.socket_read_timeout == 3
    assert (message.body_format, message.check_url) == ("markdown", SLACK)
    assert message.body.startswith(":rotating_light: *[CRITICAL] Anomaly")


def test_discord_webhook_becomes_a_discord_url() -> None:
    message = urls.discord_message(DISCORD, rendered("discord"), timeout=3)

    plugin = parsed(message.url)
    assert type(plugin).__name__ == "NotifyDiscord"
    assert (plugin.webhook_id, plugin.webhook_token) == ("123456789012345678", "abcDEF_ghi-jkl")
    assert message.check_url == DISCORD
    assert "**[CRITICAL] Anomaly in events_per_minute**" in message.body


def test_sms_goes_through_twilio() -> None:
    config = DeliveryConfig(twilio=TWILIO)

    message = urls.sms_message(config, "+15557654321", rendered("sms"), timeout=3)

    plugin = parsed(message.url)
    assert type(plugin).__name__ == "NotifyTwilio"
    assert plugin.source == "+15551234567"
    assert [target for _, target in plugin.targets] == ["+15557654321"]
    assert message.body.startswith("[CRITICAL] events_per_minute=4210.5")
    assert message.check_url is None


def test_email_uses_the_configured_relay() -> None:
    smtp = SmtpConfig("smtp.example.com", 587, "nexus@example.com", "nexus", "p@ss:w/rd")
    message = urls.email_message(DeliveryConfig(smtp=smtp), "ops@example.com", rendered("email"), 7)

    plugin = parsed(message.url)
    assert message.url.startswith("mailto://")
    assert (plugin.smtp_host, plugin.port, plugin.secure_mode) == (
        "smtp.example.com",
        587,
        "starttls",
    )
    assert (plugin.user, plugin.password) == ("nexus", "p@ss:w/rd")
    assert plugin.from_addr[1] == "nexus@example.com"
    assert [target for _, target in plugin.targets] == ["ops@example.com"]
    assert (message.title, message.body_format) == (
        "[CRITICAL] Anomaly in events_per_minute",
        "html",
    )


def test_implicit_tls_email_uses_mailtos() -> None:
    smtp = SmtpConfig("smtp.example.com", 465, "nexus@example.com", mode="ssl")
    message = urls.email_message(DeliveryConfig(smtp=smtp), "a@example.com", rendered("email"), 7)

    assert message.url.startswith("mailtos://")
    assert parsed(message.url).secure_mode == "ssl"


def test_ntfy_uses_ntfys_for_an_https_server() -> None:
    config = DeliveryConfig(ntfy=NtfyConfig("https://ntfy.example.com"))

    message = urls.push_message(config, "ops", rendered("push"), timeout=3)

    plugin = parsed(message.url)
    assert message.url.startswith("ntfys://ntfy.example.com/ops")
    assert (plugin.host, plugin.topics) == ("ntfy.example.com", ["ops"])
    assert message.check_url == "https://ntfy.example.com"
    assert message.title == "[CRITICAL] Anomaly: events_per_minute"


@pytest.mark.parametrize(
    ("channel", "address", "config"),
    [
        ("slack", "https://hooks.slack.com.evil.example/services/T1/B1/x", DeliveryConfig()),
        ("slack", "http://hooks.slack.com/services/T1/B1/x", DeliveryConfig()),
        ("discord", "https://discord.evil.example/api/webhooks/1/x", DeliveryConfig()),
        ("sms", "5557654321", DeliveryConfig(twilio=TWILIO)),
        ("sms", "+15557654321", DeliveryConfig()),
        ("push", "../admin", DeliveryConfig()),
        ("email", "ops@example.com", DeliveryConfig()),
    ],
)
def test_bad_addresses_fail_without_sending(
    channel: Channel, address: str, config: DeliveryConfig
) -> None:
    notifier = AppriseNotifier(config, guard=TargetGuard(resolver=lambda h, p: ["127.0.0.1"]))

    result = notifier.send(channel, address, rendered(channel), timeout=1)

    assert (result.ok, result.retryable) == (False, False)
    assert result.error is not None and result.error.startswith("bad address")


def test_slack_and_discord_targets_pass_the_guard_before_sending() -> None:
    guard = TargetGuard(resolver=lambda host, port: ["10.0.0.7"])
    notifier = AppriseNotifier(DeliveryConfig(), guard=guard)

    targets: list[tuple[Channel, str]] = [("slack", SLACK), ("discord", DISCORD)]
    results = [notifier.send(c, a, rendered(c), 1) for c, a in targets]

    assert [r.error for r in results] == ["unsafe target: private address 10.0.0.7"] * 2


@pytest.mark.parametrize(
    "address",
    ["https://" + "a" * 64 + ".example/hook", "http://[fec0::1]/hook", "http://a..example/"],
)
def test_malformed_and_site_local_webhooks_fail_for_good_without_raising(address: str) -> None:
    notifier = AppriseNotifier(DeliveryConfig())  # the real resolver: nothing gets that far

    result = notifier.send("webhook", address, rendered("webhook"), timeout=1)

    assert (result.ok, result.retryable) == (False, False)
    assert result.error is not None and result.error.startswith("unsafe target: ")
    assert "malformed host name" in result.error or "site-local" in result.error
