"""The names analytics clients give an ingested item's fields, taken as the plan's own.

Segment, PostHog and the platform's vision send `{"event" | "type", "userId",
"anonymousId", ...}`; the tracking plan's names are `type`, `user_id` and `anonymous_id`.
An item may use either name of a field, not both. Errors point at the name the client
sent, so `/userId` is reported for a bad `userId`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

ALIASES = {"event": "type", "userId": "user_id", "anonymousId": "anonymous_id"}


def unaliased(item: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str], list[str]]:
    """(the item under the plan's names, plan name -> alias the client used, pointers to
    aliases given beside their plan name)."""
    renamed = {ALIASES.get(key, key): value for key, value in item.items()}
    sent_as = {ALIASES[key]: key for key in item if key in ALIASES}
    twice = [f"/{alias}" for name, alias in sent_as.items() if name in item]
    return renamed, sent_as, twice


def as_sent(pointer: str, sent_as: Mapping[str, str]) -> str:
    """`pointer` into the renamed item, pointing into the item as the client sent it."""
    name, slash, rest = pointer.removeprefix("/").partition("/")
    if not pointer.startswith("/") or name not in sent_as:
        return pointer
    return f"/{sent_as[name]}{slash}{rest}"
