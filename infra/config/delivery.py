"""The delivery adapters' configuration, built from the `NEXUS_*` settings."""

from __future__ import annotations

from typing import cast

from aggregates.channels import CHANNELS, Channel
from infra.config.settings import Settings
from sagas.adapters.config import (
    DEFAULT_TIMEOUTS,
    DeliveryConfig,
    NtfyConfig,
    SmtpConfig,
    SmtpMode,
    TwilioConfig,
)

SMTP_MODES = ("insecure", "starttls", "ssl")


def delivery_config(settings: Settings) -> DeliveryConfig:
    """Raises ValueError naming the setting when one is malformed."""
    return DeliveryConfig(
        smtp=_smtp(settings),
        ntfy=NtfyConfig(server=settings.ntfy_server),
        twilio=_twilio(settings),
        timeouts=parse_timeouts(settings.delivery_timeouts),
        allow_list=tuple(e.strip() for e in settings.delivery_allow_list.split(",") if e.strip()),
    )


def parse_timeouts(text: str) -> dict[Channel, float]:
    """`email=15,webhook=2.5` over the defaults."""
    timeouts = dict(DEFAULT_TIMEOUTS)
    for item in (i.strip() for i in text.split(",") if i.strip()):
        channel, _, seconds = item.partition("=")
        if channel not in CHANNELS:
            raise ValueError(f"NEXUS_DELIVERY_TIMEOUTS: unknown channel {channel!r}")
        try:
            value = float(seconds)
        except ValueError:
            raise ValueError(f"NEXUS_DELIVERY_TIMEOUTS: {item!r} is not channel=seconds") from None
        if value <= 0:
            raise ValueError(f"NEXUS_DELIVERY_TIMEOUTS: {channel} must be positive")
        timeouts[cast(Channel, channel)] = value
    return timeouts


def _smtp(settings: Settings) -> SmtpConfig | None:
    if settings.smtp_host is None:
        return None
    if settings.smtp_mode not in SMTP_MODES:
        raise ValueError(f"NEXUS_SMTP_MODE must be one of {', '.join(SMTP_MODES)}")
    return SmtpConfig(
        host=settings.smtp_host,
        port=settings.smtp_port,
        from_addr=settings.smtp_from,
        user=settings.smtp_user,
        password=settings.smtp_password,
        mode=cast(SmtpMode, settings.smtp_mode),
    )


def _twilio(settings: Settings) -> TwilioConfig | None:
    sid, token, sender = (
        settings.twilio_account_sid,
        settings.twilio_auth_token,
        settings.twilio_from,
    )
    if sid is None or token is None or sender is None:
        return None
    return TwilioConfig(account_sid=sid, auth_token=token, from_number=sender)
