"""Helpers shared by the notifier tests: a user who receives webhooks, a saga's events."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from topic_reading import read_topic

from infra.config.settings import Settings

WAIT = {"Prefer": "wait=15"}


def webhook_user(api: httpx.Client, url: str) -> str:
    body = {"email": f"{uuid.uuid4().hex[:8]}@example.com", "name": "Ada"}
    created = api.post("/api/v1/users", json=body, headers=WAIT)
    assert created.status_code == 201, created.text
    user_id: str = created.json()["aggregate_id"]
    preferences = {"channels": [{"channel": "webhook", "address": url, "enabled": True}]}
    done = api.put(f"/api/v1/users/{user_id}/preferences", json=preferences, headers=WAIT)
    assert done.status_code == 200, done.text
    seen = api.get(f"/api/v1/users/{user_id}", params={"after": done.json()["position"]})
    assert seen.json()["channels"][0]["address"] == url
    return user_id


def saga_events(settings: Settings, saga_id: str) -> list[dict[str, Any]]:
    return [
        s.record
        for s in read_topic(settings, settings.topic("notifications"))
        if s.record["aggregate_id"] == saga_id
    ]
