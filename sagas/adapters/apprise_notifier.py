"""The `Notifier` adapter: apprise for email/SMS/push/Slack/Discord, httpx for webhooks.

This is the only module that imports apprise. Email goes to the configured SMTP relay
(mailto:// or mailtos://), SMS through Twilio (twilio://), push to the configured ntfy server
(ntfy:// or ntfys://), Slack and Discord through their webhook URLs (slack://, discord://).
Generic webhooks use `WebhookSender` (httpx, redirects off) because apprise's json:// plugin
follows redirects and hides the status code. The SSRF guard checks the http(s) endpoint of
every ntfy/Slack/Discord/webhook target before anything is sent.

apprise only says True/False; the status code is read back from apprise's own log lines
(`error=NNN`) to tell 4xx (permanent) from 5xx/timeouts/connection errors (retryable). The
lines are captured per call (`log_capture`), so a concurrent send's lines never reach this
attempt's `provider_response`.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable

import apprise

from aggregates.channels import Channel
from sagas.adapters import apprise_urls as urls
from sagas.adapters.config import DeliveryConfig
from sagas.adapters.log_capture import captured_lines
from sagas.adapters.port import DeliveryResult
from sagas.adapters.targets import AllowList, TargetGuard, UnsafeTarget
from sagas.adapters.webhook import RETRYABLE_STATUS, WebhookSender
from sagas.rendering import Rendered

MessageBuilder = Callable[[DeliveryConfig, str, Rendered, float], urls.AppriseMessage]

BUILDERS: dict[Channel, MessageBuilder] = {
    "email": urls.email_message,
    "sms": urls.sms_message,
    "push": urls.push_message,
    "slack": lambda _config, address, rendered, timeout: urls.slack_message(
        address, rendered, timeout
    ),
    "discord": lambda _config, address, rendered, timeout: urls.discord_message(
        address, rendered, timeout
    ),
}
_FORMATS = {
    "text": apprise.NotifyFormat.TEXT,
    "html": apprise.NotifyFormat.HTML,
    "markdown": apprise.NotifyFormat.MARKDOWN,
}
_STATUS = re.compile(r"error=(\d{3})")
_LOG_EXCERPT = 1000


class AppriseNotifier:
    """Sends rendered notifications; every failure comes back as a DeliveryResult."""

    def __init__(
        self,
        config: DeliveryConfig,
        guard: TargetGuard | None = None,
        webhook: WebhookSender | None = None,
    ) -> None:
        self.config = config
        self.guard = guard or TargetGuard(allow=AllowList.parse(config.allow_list))
        self.webhook = webhook or WebhookSender(config.user_agent)

    def close(self) -> None:
        self.webhook.close()

    def send(
        self,
        channel: Channel,
        address: str,
        rendered: Rendered,
        timeout: float,
        ledger_key: str | None = None,
    ) -> DeliveryResult:
        """One attempt on one channel; refused targets and bad addresses never send."""
        started = time.perf_counter()
        try:
            if channel == "webhook":
                target = self.guard.check(address)
                if rendered.json is None:
                    raise urls.AddressError("rendered webhook message has no JSON")
                # The sender connects to the addresses just checked: no second DNS answer.
                return self.webhook.post(target, rendered.json, timeout, ledger_key)
            message = BUILDERS[channel](self.config, address, rendered, timeout)
            if message.check_url is not None:
                self.guard.check(message.check_url)
        except UnsafeTarget as exc:
            return _failure(started, f"unsafe target: {exc.reason}", exc.retryable)
        except urls.AddressError as exc:
            return _failure(started, f"bad address: {exc}", retryable=False)
        return self._notify(message, started)

    def _notify(self, message: urls.AppriseMessage, started: float) -> DeliveryResult:
        apobj = apprise.Apprise(asset=apprise.AppriseAsset(async_mode=False))
        if not apobj.add(message.url):
            return _failure(started, "apprise rejected the URL", retryable=False)
        try:
            with captured_lines("apprise") as captured:
                ok = apobj.notify(
                    body=message.body,
                    title=message.title,
                    body_format=_FORMATS[message.body_format],
                )
            lines = "\n".join(captured)
        except Exception as exc:  # an adapter must not crash the saga
            return _failure(started, f"apprise raised {type(exc).__name__}: {exc}", True)
        response = lines[-_LOG_EXCERPT:].strip()
        latency = (time.perf_counter() - started) * 1000
        if ok:
            return DeliveryResult(True, response, latency)
        statuses = [int(s) for s in _STATUS.findall(lines)]
        retryable = not statuses or any(s >= 500 or s in RETRYABLE_STATUS for s in statuses)
        error = f"provider error {statuses[-1]}" if statuses else "provider failure"
        return DeliveryResult(False, response, latency, retryable, error)


def _failure(started: float, error: str, retryable: bool) -> DeliveryResult:
    latency = (time.perf_counter() - started) * 1000
    return DeliveryResult(False, "", latency, retryable, error)
