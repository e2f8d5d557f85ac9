"""The notification channels: the one vocabulary of users' preferences, templates and delivery.

The Avro enum `Channel` in the preferences schemas holds the same symbols in the same order
(tests/unit/test_channels.py checks it).
"""

from __future__ import annotations

from typing import Literal, get_args

Channel = Literal["email", "sms", "push", "slack", "discord", "webhook"]
CHANNELS: tuple[Channel, ...] = get_args(Channel)
