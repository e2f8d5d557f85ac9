"""Given events / when command / then events (or error) for the workspace decider."""

from __future__ import annotations

from collections.abc import Sequence
from functools import reduce

import pytest

from aggregates.errors import DomainError
from aggregates.registry import WORKSPACE
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
from aggregates.workspace.state import Member

CREATED: list[WorkspaceEvent] = [
    WorkspaceCreated(name="Acme", owner_id="u-owner"),
    WorkspaceMemberAdded(user_id="u-owner", role="owner"),
]
WITH_BOB: list[WorkspaceEvent] = [*CREATED, WorkspaceMemberAdded(user_id="u-bob", role="admin")]
ARCHIVED: list[WorkspaceEvent] = [*WITH_BOB, WorkspaceArchived(reason="closed")]


def decide_given(
    given: Sequence[WorkspaceEvent], command: WorkspaceCommand
) -> list[WorkspaceEvent]:
    state = reduce(WORKSPACE.evolve, given, WORKSPACE.initial_state)
    return WORKSPACE.decide(state, command)


def error_given(given: Sequence[WorkspaceEvent], command: WorkspaceCommand) -> DomainError:
    with pytest.raises(DomainError) as info:
        decide_given(given, command)
    return info.value


def test_create_adds_the_owner_as_first_member() -> None:
    assert decide_given([], CreateWorkspace(name="Acme", owner_id="u-owner")) == CREATED


def test_rename() -> None:
    assert decide_given(CREATED, RenameWorkspace(name="Acme Ltd")) == [
        WorkspaceRenamed(name="Acme Ltd")
    ]


def test_rename_to_the_same_name_is_a_no_op() -> None:
    assert decide_given(CREATED, RenameWorkspace(name="Acme")) == []
    renamed = [*CREATED, WorkspaceRenamed(name="Acme Ltd")]
    assert decide_given(renamed, RenameWorkspace(name="Acme Ltd")) == []


@pytest.mark.parametrize("role", ["owner", "admin", "member"])
def test_add_member(role: str) -> None:
    command = AddWorkspaceMember(user_id="u-carol", role=role)
    assert decide_given(CREATED, command) == [WorkspaceMemberAdded(user_id="u-carol", role=role)]


def test_add_member_defaults_to_member_role() -> None:
    assert decide_given(CREATED, AddWorkspaceMember(user_id="u-carol")) == [
        WorkspaceMemberAdded(user_id="u-carol", role="member")
    ]


def test_remove_member() -> None:
    assert decide_given(WITH_BOB, RemoveWorkspaceMember(user_id="u-bob")) == [
        WorkspaceMemberRemoved(user_id="u-bob")
    ]


def test_removed_member_can_be_added_again() -> None:
    given = [*WITH_BOB, WorkspaceMemberRemoved(user_id="u-bob")]
    assert decide_given(given, AddWorkspaceMember(user_id="u-bob")) == [
        WorkspaceMemberAdded(user_id="u-bob", role="member")
    ]


def test_archive() -> None:
    assert decide_given(CREATED, ArchiveWorkspace(reason="closed")) == [
        WorkspaceArchived(reason="closed")
    ]
    assert decide_given(CREATED, ArchiveWorkspace()) == [WorkspaceArchived()]


def test_evolve_folds_every_event() -> None:
    given = [
        *WITH_BOB,
        WorkspaceMemberAdded(user_id="u-carol", role="member"),
        WorkspaceMemberRemoved(user_id="u-bob"),
        WorkspaceRenamed(name="Acme Ltd"),
        WorkspaceArchived(),
    ]
    state = reduce(WORKSPACE.evolve, given, WORKSPACE.initial_state)
    assert state.created and state.archived
    assert (state.name, state.owner_id) == ("Acme Ltd", "u-owner")
    assert state.members == (Member("u-owner", "owner"), Member("u-carol", "member"))
    assert state.role_of("u-carol") == "member"
    assert state.role_of("u-bob") is None


ERRORS = [
    (
        CREATED,
        CreateWorkspace(name="Other", owner_id="u-x"),
        "workspace.already_exists",
        "conflict",
    ),
    (
        ARCHIVED,
        CreateWorkspace(name="Other", owner_id="u-x"),
        "workspace.already_exists",
        "conflict",
    ),
    ([], RenameWorkspace(name="X"), "workspace.not_found", "not_found"),
    ([], AddWorkspaceMember(user_id="u-x"), "workspace.not_found", "not_found"),
    ([], RemoveWorkspaceMember(user_id="u-x"), "workspace.not_found", "not_found"),
    ([], ArchiveWorkspace(), "workspace.not_found", "not_found"),
    (ARCHIVED, RenameWorkspace(name="X"), "workspace.archived", "conflict"),
    (ARCHIVED, AddWorkspaceMember(user_id="u-x"), "workspace.archived", "conflict"),
    (ARCHIVED, RemoveWorkspaceMember(user_id="u-bob"), "workspace.archived", "conflict"),
    (ARCHIVED, ArchiveWorkspace(), "workspace.already_archived", "conflict"),
    (WITH_BOB, AddWorkspaceMember(user_id="u-bob"), "workspace.member_exists", "conflict"),
    (CREATED, AddWorkspaceMember(user_id="u-owner"), "workspace.member_exists", "conflict"),
    (CREATED, AddWorkspaceMember(user_id="u-x", role="guest"), "workspace.invalid_role", "invalid"),
    (CREATED, AddWorkspaceMember(user_id="u-x", role="Admin"), "workspace.invalid_role", "invalid"),
    (CREATED, RemoveWorkspaceMember(user_id="u-x"), "workspace.not_a_member", "not_found"),
    (
        CREATED,
        RemoveWorkspaceMember(user_id="u-owner"),
        "workspace.cannot_remove_owner",
        "conflict",
    ),
]


@pytest.mark.parametrize("given, command, code, kind", ERRORS)
def test_rule_violations(
    given: list[WorkspaceEvent], command: WorkspaceCommand, code: str, kind: str
) -> None:
    error = error_given(given, command)
    assert (error.code, error.kind) == (code, kind)


@pytest.mark.parametrize("name", ["", "   ", "x" * 101])
def test_invalid_name(name: str) -> None:
    assert (
        error_given([], CreateWorkspace(name=name, owner_id="u")).code == "workspace.invalid_name"
    )
    assert error_given(CREATED, RenameWorkspace(name=name)).code == "workspace.invalid_name"


def test_name_of_100_characters_is_allowed() -> None:
    name = "x" * 100
    assert decide_given(CREATED, RenameWorkspace(name=name)) == [WorkspaceRenamed(name=name)]
