"""Given rows and events, then rows: the projections' folds, with no I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from projections.catalog import PROJECTIONS, schema_name
from projections.model import Event, Projection, Row, RowCache

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def event(type_: str, aggregate_id: str, version: int, **data: Any) -> tuple[str, Event]:
    record = {
        "type": type_,
        "aggregate_id": aggregate_id,
        "aggregate_version": version,
        "occurred_at": T0 + timedelta(seconds=version),
        "data": data,
    }
    return type_, record


def fold(projection: Projection, events: list[tuple[str, Event]], rows: RowCache) -> RowCache:
    """Fold as the batch applier does: only the events the projection handles."""
    projection.fold(rows, [(name, e) for name, e in events if projection.handles(name)])
    return rows


def only_row(rows: RowCache, table: str) -> Row:
    upserts, deletes = rows.changes(table)
    assert deletes == [] and len(upserts) == 1
    return upserts[0]


def test_a_user_is_registered_updated_and_deactivated() -> None:
    channel = {"channel": "email", "address": "a@x.io", "enabled": True}
    user = only_row(
        fold(
            PROJECTIONS["users"],
            [
                event("user.registered", "u1", 1, email="a@x.io", name="Ann", locale=None),
                event("user.profile_updated", "u1", 2, name=None, email="b@x.io"),
                event("user.preferences_set", "u1", 3, channels=[channel], quiet_hours=None),
                event("user.deactivated", "u1", 4, reason="left"),
                event("workspace.created", "w1", 1, name="W", owner_id="u1"),
            ],
            RowCache(),
        ),
        "users",
    )
    assert user == {
        "user_id": "u1", "email": "b@x.io", "name": "Ann", "locale": None,
        "status": "deactivated", "deactivation_reason": "left", "channels": [channel],
        "quiet_hours": None, "version": 4, "registered_at": T0 + timedelta(seconds=1),
        "updated_at": T0 + timedelta(seconds=4),
    }  # fmt: skip


def test_an_event_at_or_below_the_row_version_is_not_applied_again() -> None:
    stored = {"user_id": "u1", "name": "Ann", "version": 2, "status": "active"}
    rows = RowCache(rows={"users": {("u1",): stored}})
    fold(
        PROJECTIONS["users"],
        [
            event("user.registered", "u1", 1, email="a@x.io", name="Again"),
            event("user.profile_updated", "u1", 2, name="Stale", email=None),
        ],
        rows,
    )
    assert rows.changes("users") == ([], [])


def test_events_of_an_unknown_user_change_nothing() -> None:
    rows = fold(PROJECTIONS["users"], [event("user.deactivated", "u9", 2, reason=None)], RowCache())
    assert rows.changes("users") == ([], [])


def test_every_workspace_event_advances_the_workspace_version() -> None:
    workspace = only_row(
        fold(
            PROJECTIONS["workspaces"],
            [
                event("workspace.created", "w1", 1, name="W", owner_id="u1"),
                event("workspace.member_added", "w1", 2, user_id="u1", role="owner"),
                event("workspace.renamed", "w1", 3, name="W2"),
                event("workspace.archived", "w1", 4, reason=None),
            ],
            RowCache(),
        ),
        "workspaces",
    )
    assert (workspace["name"], workspace["status"], workspace["version"]) == ("W2", "archived", 4)
    assert workspace["created_at"] == T0 + timedelta(seconds=1)


def test_memberships_follow_adds_and_removes_within_one_batch() -> None:
    stored = {"workspace_id": "w1", "user_id": "u2", "role": "member", "version": 2}
    rows = RowCache(rows={"memberships": {("w1", "u2"): stored}})
    fold(
        PROJECTIONS["memberships"],
        [
            event("workspace.member_removed", "w1", 3, user_id="u2"),
            event("workspace.member_added", "w1", 4, user_id="u3", role="member"),
            event("workspace.member_removed", "w1", 5, user_id="u3"),
            event("workspace.member_added", "w1", 6, user_id="u2", role="admin"),
            event("workspace.member_added", "w1", 2, user_id="u2", role="owner"),
            event("workspace.member_removed", "w1", 7, user_id="u4"),
        ],
        rows,
    )
    upserts, deletes = rows.changes("memberships")
    assert deletes == [("w1", "u3")]
    assert upserts == [
        {
            "workspace_id": "w1",
            "user_id": "u2",
            "role": "admin",
            "added_at": T0 + timedelta(seconds=6),
            "version": 6,
        }
    ]


def test_an_outcome_becomes_a_row() -> None:
    outcome = {
        "command_id": "c1", "command_type": "RegisterUser", "aggregate_type": "user",
        "aggregate_id": "u1", "correlation_id": "k", "status": "accepted", "version": 1,
        "position": "0-5", "event_ids": ["e1"], "error_code": None, "error_kind": None,
        "error_message": None, "decided_at": T0,
    }  # fmt: skip
    row = only_row(
        fold(PROJECTIONS["command_outcomes"], [("command.outcome", outcome)], RowCache()),
        "command_outcomes",
    )
    assert row == outcome


def test_each_projection_reads_one_topic_and_lives_in_versioned_schemas() -> None:
    assert {p.name: p.topic for p in PROJECTIONS.values()} == {
        "users": "events",
        "workspaces": "events",
        "memberships": "events",
        "command_outcomes": "outcomes",
        "notifications": "notifications",
        "analytics": "analytics",
        "anomalies": "events",
    }
    assert schema_name("users", 3) == "proj_users_v3"
