"""The command side without Kafka: versions, preconditions, rejections, deterministic ids."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aggregates.actor import USERS_ADMIN, WORKSPACES_ADMIN
from aggregates.handling import AggregateStates, decide_command, internal_error

AT = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def command(type_: str, aggregate_id: str, data: dict[str, Any], **extra: Any) -> dict[str, Any]:
    aggregate_type = "user" if "User" in type_ or "Preferences" in type_ else "workspace"
    return {
        "command_id": f"cmd-{type_}-{aggregate_id}",
        "type": type_,
        "aggregate_type": aggregate_type,
        "aggregate_id": aggregate_id,
        "expected_version": None,
        "issued_at": AT,
        "correlation_id": "corr",
        "actor": "alice",
        "actor_scopes": [USERS_ADMIN, WORKSPACES_ADMIN],  # rules of access: tested below
        "data": data,
        **extra,
    }


def register(states: AggregateStates, user_id: str = "u1") -> None:
    decision = decide_command(
        states,
        command("RegisterUser", user_id, {"email": "a@b.co", "name": "A", "locale": None}),
        lambda: AT,
    )
    states.set("user", user_id, decision.state, decision.version)


def test_accepted_command_numbers_events_from_the_current_version() -> None:
    states = AggregateStates()
    created = decide_command(
        states, command("CreateWorkspace", "w1", {"name": "Acme", "owner_id": "u1"}), lambda: AT
    )
    assert [e["type"] for e in created.events] == ["workspace.created", "workspace.member_added"]
    assert [e["aggregate_version"] for e in created.events] == [1, 2]
    assert created.outcome["status"] == "accepted"
    assert created.outcome["version"] == 2
    assert all(e["causation_id"] == created.command["command_id"] for e in created.events)
    assert created.outcome["event_ids"] == [e["event_id"] for e in created.events]


def test_event_ids_derive_from_the_command_so_a_retry_repeats_them() -> None:
    first = decide_command(
        AggregateStates(),
        command("CreateWorkspace", "w1", {"name": "A", "owner_id": "u"}),
        lambda: AT,
    )
    again = decide_command(
        AggregateStates(),
        command("CreateWorkspace", "w1", {"name": "A", "owner_id": "u"}),
        lambda: AT,
    )
    assert [e["event_id"] for e in first.events] == [e["event_id"] for e in again.events]


def test_stale_expected_version_is_a_precondition_failure() -> None:
    states = AggregateStates()
    register(states)
    stale = decide_command(
        states,
        command("UpdateUserProfile", "u1", {"name": "B", "email": None}, expected_version=0),
        lambda: AT,
    )
    assert stale.events == []
    assert (stale.outcome["error_code"], stale.outcome["error_kind"]) == (
        "version_conflict",
        "precondition",
    )
    current = decide_command(
        states,
        command("UpdateUserProfile", "u1", {"name": "B", "email": None}, expected_version=1),
        lambda: AT,
    )
    assert current.accepted and current.version == 2


def test_domain_errors_become_rejected_outcomes_with_their_code() -> None:
    states = AggregateStates()
    register(states)
    again = decide_command(
        states,
        command("RegisterUser", "u1", {"email": "a@b.co", "name": "A", "locale": None}),
        lambda: AT,
    )
    assert again.outcome["status"] == "rejected"
    assert (again.outcome["error_code"], again.outcome["error_kind"]) == (
        "user.already_registered",
        "conflict",
    )
    assert again.outcome["version"] == 1


def test_a_command_for_the_wrong_aggregate_type_is_rejected() -> None:
    odd = command("RegisterUser", "u1", {"email": "a@b.co", "name": "A", "locale": None})
    odd["aggregate_type"] = "invoice"
    decision = decide_command(AggregateStates(), odd, lambda: AT)
    assert decision.outcome["error_code"] == "command.unknown"


def test_overlay_changes_reach_the_base_only_when_merged() -> None:
    base = AggregateStates()
    register(base, "u1")
    staged = base.overlay()
    register(staged, "u2")
    assert staged.get("user", "u1")[1] == 1
    assert base.get("user", "u2")[1] == 0
    base.merge(staged)
    assert base.get("user", "u2")[1] == 1


def test_a_command_whose_handling_failed_is_rejected_not_retried() -> None:
    failed = internal_error(command("RegisterUser", "u9", {}), AT)
    assert failed.events == []
    assert failed.outcome["status"] == "rejected"
    assert (failed.outcome["error_code"], failed.outcome["error_kind"]) == (
        "internal_error",
        "internal",
    )


def test_a_stranger_is_refused_before_the_version_is_compared() -> None:
    states = AggregateStates()
    register(states)
    update = {"name": "B", "email": None}
    stranger = {"actor": "mallory", "actor_scopes": [], "expected_version": 0}
    refused = decide_command(
        states, command("UpdateUserProfile", "u1", update, **stranger), lambda: AT
    )
    assert (refused.outcome["error_code"], refused.outcome["error_kind"]) == (
        "user.forbidden",
        "forbidden",
    )
    assert refused.events == []


def test_a_command_written_before_scopes_travelled_acts_with_none() -> None:
    states = AggregateStates()
    register(states)
    old = command("DeactivateUser", "u1", {"reason": None}, actor="ops")
    del old["actor_scopes"]
    refused = decide_command(states, old, lambda: AT)
    assert refused.outcome["error_code"] == "user.forbidden"
    itself = command("DeactivateUser", "u1", {"reason": None}, actor="u1")
    del itself["actor_scopes"]
    assert decide_command(states, itself, lambda: AT).accepted
