"""The workspace aggregate as a pure decider: `decide(state, command)`, `evolve(state, event)`."""

from __future__ import annotations

from dataclasses import replace
from typing import assert_never

from aggregates.errors import DomainError
from aggregates.workspace.commands import (
    AddWorkspaceMember,
    ArchiveWorkspace,
    CreateWorkspace,
    RemoveWorkspaceMember,
    RenameWorkspace,
    WorkspaceCommand,
)
from aggregates.workspace.events import (
    WorkspaceArchived,
    WorkspaceCreated,
    WorkspaceEvent,
    WorkspaceMemberAdded,
    WorkspaceMemberRemoved,
    WorkspaceRenamed,
)
from aggregates.workspace.state import Member, WorkspaceState, initial_state

__all__ = ["ROLES", "decide", "evolve", "initial_state"]

ROLES = frozenset({"owner", "admin", "member"})
MAX_NAME_LENGTH = 100


def decide(state: WorkspaceState, command: WorkspaceCommand) -> list[WorkspaceEvent]:
    match command:
        case CreateWorkspace():
            return _create(state, command)
        case RenameWorkspace():
            _require_open(state)
            return _rename(state, command)
        case AddWorkspaceMember():
            _require_open(state)
            return _add_member(state, command)
        case RemoveWorkspaceMember():
            _require_open(state)
            return _remove_member(state, command)
        case ArchiveWorkspace():
            return _archive(state, command)
        case _:
            assert_never(command)


def evolve(state: WorkspaceState, event: WorkspaceEvent) -> WorkspaceState:
    match event:
        case WorkspaceCreated():
            return replace(state, created=True, name=event.name, owner_id=event.owner_id)
        case WorkspaceRenamed():
            return replace(state, name=event.name)
        case WorkspaceMemberAdded():
            member = Member(user_id=event.user_id, role=event.role)
            return replace(state, members=(*state.members, member))
        case WorkspaceMemberRemoved():
            members = tuple(m for m in state.members if m.user_id != event.user_id)
            return replace(state, members=members)
        case WorkspaceArchived():
            return replace(state, archived=True)
        case _:
            assert_never(event)


def _require_open(state: WorkspaceState) -> None:
    if not state.created:
        raise DomainError.not_found("workspace.not_found", "workspace does not exist")
    if state.archived:
        raise DomainError.conflict("workspace.archived", "workspace is archived")


def _create(state: WorkspaceState, command: CreateWorkspace) -> list[WorkspaceEvent]:
    if state.created:
        raise DomainError.conflict("workspace.already_exists", "workspace already exists")
    _check_name(command.name)
    return [
        WorkspaceCreated(name=command.name, owner_id=command.owner_id),
        WorkspaceMemberAdded(user_id=command.owner_id, role="owner"),
    ]


def _rename(state: WorkspaceState, command: RenameWorkspace) -> list[WorkspaceEvent]:
    _check_name(command.name)
    if command.name == state.name:
        return []
    return [WorkspaceRenamed(name=command.name)]


def _add_member(state: WorkspaceState, command: AddWorkspaceMember) -> list[WorkspaceEvent]:
    if command.role not in ROLES:
        raise DomainError.invalid(
            "workspace.invalid_role",
            f"role {command.role!r} is not one of {', '.join(sorted(ROLES))}",
        )
    if state.role_of(command.user_id) is not None:
        raise DomainError.conflict(
            "workspace.member_exists", f"user {command.user_id!r} is already a member"
        )
    return [WorkspaceMemberAdded(user_id=command.user_id, role=command.role)]


def _remove_member(state: WorkspaceState, command: RemoveWorkspaceMember) -> list[WorkspaceEvent]:
    if state.role_of(command.user_id) is None:
        raise DomainError.not_found(
            "workspace.not_a_member", f"user {command.user_id!r} is not a member"
        )
    owners = [m.user_id for m in state.members if m.role == "owner"]
    if owners == [command.user_id]:
        raise DomainError.conflict(
            "workspace.cannot_remove_owner", "the last owner cannot be removed, nor leave"
        )
    return [WorkspaceMemberRemoved(user_id=command.user_id)]


def _archive(state: WorkspaceState, command: ArchiveWorkspace) -> list[WorkspaceEvent]:
    if state.archived:
        raise DomainError.conflict("workspace.already_archived", "workspace is already archived")
    _require_open(state)
    return [WorkspaceArchived(reason=command.reason)]


def _check_name(name: str) -> None:
    if not name.strip() or len(name) > MAX_NAME_LENGTH:
        raise DomainError.invalid(
            "workspace.invalid_name", f"name must be 1 to {MAX_NAME_LENGTH} non-blank characters"
        )
