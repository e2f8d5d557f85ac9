"""Pure construction of apprise URLs and message payloads per channel (no apprise import).

Kept apart from the adapter so URL/payload construction for channels without a local
receiver (Slack, Discord, SMS) is unit-testable. Every builder raises `AddressError` for an
address that cannot be used; that is a permanent (non-retryable) failure.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import quote, urlencode, urlsplit

from aggregates.user.decider import is_email
from sagas.adapters.config import DeliveryConfig
from sagas.rendering import Rendered

BodyFormat = Literal["text", "html", "markdown"]

_NOT_IN_ADDRESS = frozenset("<>,;")  # would split or re-address the apprise URL
_PHONE = re.compile(r"^\+[1-9][0-9]{6,14}$")
_TOPIC = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_SLACK = re.compile(r"^/services/([A-Z0-9]+)/([A-Z0-9]+)/([A-Za-z0-9]+)/?$")
_DISCORD = re.compile(r"^/api/webhooks/([0-9]+)/([A-Za-z0-9_-]+)/?$")
DISCORD_HOSTS = frozenset({"discord.com", "discordapp.com"})


class AddressError(ValueError):
    """The channel address (or channel config) cannot be turned into an apprise URL."""


@dataclass(frozen=True)
class AppriseMessage:
    """What the adapter hands to apprise: URL, title, body and body format; `check_url` is
    the http(s) endpoint the SSRF guard checks first (None for SMTP and SMS)."""

    url: str
    title: str
    body: str
    body_format: BodyFormat
    check_url: str | None = None


def _timeouts(timeout: float) -> dict[str, str]:
    return {"cto": f"{timeout:g}", "rto": f"{timeout:g}"}


def email_message(
    config: DeliveryConfig, address: str, rendered: Rendered, timeout: float
) -> AppriseMessage:
    """mailto:// (plain or STARTTLS) or mailtos:// (implicit TLS) to the configured relay."""
    smtp = config.smtp
    if smtp is None:
        raise AddressError("email is not configured (no SMTP relay)")
    if not is_email(address) or _NOT_IN_ADDRESS.intersection(address):
        raise AddressError(f"not an email address: {address!r}")
    if rendered.subject is None or rendered.html is None:
        raise AddressError("email needs a subject and an HTML body")
    scheme = "mailtos" if smtp.mode == "ssl" else "mailto"
    auth = ""
    if smtp.user:
        auth = quote(smtp.user, safe="") + (
            f":{quote(smtp.password, safe='')}" if smtp.password else ""
        )
        auth += "@"
    query = {"smtp": smtp.host, "from": smtp.from_addr, "to": address, "mode": smtp.mode}
    query |= _timeouts(timeout)
    url = f"{scheme}://{auth}{_host(smtp.host)}:{smtp.port}/?{urlencode(query)}"
    return AppriseMessage(url, rendered.subject, rendered.html, "html")


def sms_message(
    config: DeliveryConfig, address: str, rendered: Rendered, timeout: float
) -> AppriseMessage:
    """twilio://SID:TOKEN@FROM/TO with E.164 numbers."""
    twilio = config.twilio
    if twilio is None:
        raise AddressError("sms is not configured (no Twilio account)")
    if not _PHONE.fullmatch(address):
        raise AddressError(f"not an E.164 phone number: {address!r}")
    sid, token = quote(twilio.account_sid, safe=""), quote(twilio.auth_token, safe="")
    source, target = quote(twilio.from_number, safe=""), quote(address, safe="")
    url = f"twilio://{sid}:{token}@{source}/{target}/?{urlencode(_timeouts(timeout))}"
    return AppriseMessage(url, "", _text(rendered), "text")


def push_message(
    config: DeliveryConfig, address: str, rendered: Rendered, timeout: float
) -> AppriseMessage:
    """ntfy://host[:port]/TOPIC (ntfys:// for https) on the configured server."""
    if not _TOPIC.fullmatch(address):
        raise AddressError(f"not an ntfy topic: {address!r}")
    server = urlsplit(config.ntfy.server)
    if server.scheme not in ("http", "https") or not server.hostname:
        raise AddressError(f"ntfy server must be an http(s) URL: {config.ntfy.server!r}")
    scheme = "ntfys" if server.scheme == "https" else "ntfy"
    port = f":{server.port}" if server.port else ""
    query = {"mode": "private"} | _timeouts(timeout)
    url = f"{scheme}://{_host(server.hostname)}{port}/{address}?{urlencode(query)}"
    title, body = rendered.title or "", rendered.body or _text(rendered)
    return AppriseMessage(url, title, body, "text", check_url=config.ntfy.server)


def slack_message(address: str, rendered: Rendered, timeout: float) -> AppriseMessage:
    """https://hooks.slack.com/services/T/B/X becomes slack://T/B/X."""
    parts = urlsplit(address)
    found = _SLACK.fullmatch(parts.path)
    if parts.scheme != "https" or parts.hostname != "hooks.slack.com" or not found:
        raise AddressError("not a Slack incoming-webhook URL")
    team, bot, token = found.groups()
    url = f"slack://{team}/{bot}/{token}/?{urlencode(_timeouts(timeout))}"
    return AppriseMessage(url, "", _text(rendered), "markdown", check_url=address)


def discord_message(address: str, rendered: Rendered, timeout: float) -> AppriseMessage:
    """https://discord.com/api/webhooks/ID/TOKEN becomes discord://ID/TOKEN."""
    parts = urlsplit(address)
    found = _DISCORD.fullmatch(parts.path)
    if parts.scheme != "https" or parts.hostname not in DISCORD_HOSTS or not found:
        raise AddressError("not a Discord webhook URL")
    webhook_id, token = found.groups()
    url = f"discord://{webhook_id}/{token}/?{urlencode(_timeouts(timeout))}"
    return AppriseMessage(url, "", _text(rendered), "markdown", check_url=address)


def _text(rendered: Rendered) -> str:
    if rendered.text is None:
        raise AddressError(f"rendered {rendered.channel} message has no text")
    return rendered.text


def _host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
