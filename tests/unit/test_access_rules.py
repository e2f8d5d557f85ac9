"""Given events / when command by an actor / then allowed or refused, for every access rule."""

from __future__ import annotations

from collections.abc import Sequence
from functools import reduce

import pytest

from aggregates.actor import USERS_ADMIN, WORKSPACES_ADMIN, Actor
from aggregates.errors import DomainError
from aggregates.registry import USER, WORKSPACE
from aggregates.user.commands import (
    DeactivateUser,
    RegisterUser,
    SetNotificationPreferences,
    UpdateUserProfile,
    UserCommand,
)
from aggregates.user.events import UserEvent, UserRegistered
from aggregates.workspace.commands import (
    AddWorkspaceMember,
    ArchiveWorkspace,
    CreateWorkspace,
    RemoveWorkspaceMember,
    RenameWorkspace,
    WorkspaceCommand,
)
from aggregates.workspace.events import WorkspaceCreated, WorkspaceEvent, WorkspaceMemberAdded

ALICE, MALLORY = Actor("alice"), Actor("mallory")
USER_OPERATOR = Actor("ops", frozenset({USERS_ADMIN}))
WORKSPACE_OPERATOR = Actor("ops", frozenset({WORKSPACES_ADMIN}))
ALICE_REGISTERED: list[UserEvent] = [UserRegistered(email="alice@example.com", name="Alice")]
USER_COMMANDS: list[UserCommand] = [
    RegisterUser(email="alice@example.com", name="Alice"),
    UpdateUserProfile(email="mallory@evil.example"),
    SetNotificationPreferences(channels=()),
    DeactivateUser(),
]
# alice owns w-1, bob admins it, carol and frank are members, dave a second owner; mallory is none.
TEAM: list[WorkspaceEvent] = [
    WorkspaceCreated(name="Acme", owner_id="alice"),
    WorkspaceMemberAdded(user_id="alice", role="owner"),
    WorkspaceMemberAdded(user_id="bob", role="admin"),
    WorkspaceMemberAdded(user_id="carol", role="member"),
    WorkspaceMemberAdded(user_id="dave", role="owner"),
    WorkspaceMemberAdded(user_id="frank", role="member"),
]
MANAGE: list[WorkspaceCommand] = [
    RenameWorkspace(name="Mine now"),
    ArchiveWorkspace(),
    AddWorkspaceMember(user_id="erin"),
    RemoveWorkspaceMember(user_id="frank"),
]


def user_check(given: Sequence[UserEvent], command: UserCommand, actor: Actor, uid: str) -> None:
    USER.authorize(reduce(USER.evolve, given, USER.initial_state), command, actor, uid)


def workspace_check(
    given: Sequence[WorkspaceEvent], command: WorkspaceCommand, actor: Actor
) -> None:
    state = reduce(WORKSPACE.evolve, given, WORKSPACE.initial_state)
    WORKSPACE.authorize(state, command, actor, "w-1")


def refusal(check: object, *args: object) -> DomainError:
    with pytest.raises(DomainError) as info:
        check(*args)  # type: ignore[operator]
    return info.value


@pytest.mark.parametrize("command", USER_COMMANDS)
def test_a_user_acts_on_itself(command: UserCommand) -> None:
    user_check(ALICE_REGISTERED, command, ALICE, "alice")


@pytest.mark.parametrize("command", USER_COMMANDS)
@pytest.mark.parametrize("given", [[], ALICE_REGISTERED])
def test_nobody_acts_on_another_user(given: list[UserEvent], command: UserCommand) -> None:
    error = refusal(user_check, given, command, MALLORY, "alice")
    assert (error.code, error.kind) == ("user.forbidden", "forbidden")


@pytest.mark.parametrize("command", USER_COMMANDS)
def test_a_users_operator_acts_on_anyone(command: UserCommand) -> None:
    user_check(ALICE_REGISTERED, command, USER_OPERATOR, "alice")


def test_a_workspaces_operator_is_no_users_operator() -> None:
    error = refusal(user_check, ALICE_REGISTERED, DeactivateUser(), WORKSPACE_OPERATOR, "alice")
    assert error.code == "user.forbidden"


def test_create_owned_by_the_caller() -> None:
    workspace_check([], CreateWorkspace(name="Acme", owner_id="alice"), ALICE)


def test_create_owned_by_another_is_refused() -> None:
    error = refusal(workspace_check, [], CreateWorkspace(name="Acme", owner_id="alice"), MALLORY)
    assert (error.code, error.kind) == ("workspace.forbidden", "forbidden")


def test_an_operator_creates_for_another() -> None:
    workspace_check([], CreateWorkspace(name="Acme", owner_id="alice"), WORKSPACE_OPERATOR)


@pytest.mark.parametrize("command", MANAGE)
@pytest.mark.parametrize("who", ["alice", "bob"])
def test_owners_and_admins_manage(who: str, command: WorkspaceCommand) -> None:
    workspace_check(TEAM, command, Actor(who))


@pytest.mark.parametrize("command", MANAGE)
def test_a_member_may_not_manage(command: WorkspaceCommand) -> None:
    error = refusal(workspace_check, TEAM, command, Actor("carol"))
    assert (error.code, error.kind) == ("workspace.forbidden", "forbidden")


@pytest.mark.parametrize("command", [*MANAGE, AddWorkspaceMember(user_id="mallory")])
@pytest.mark.parametrize("given", [[], TEAM])
def test_a_stranger_finds_no_workspace(given: list[WorkspaceEvent], command: object) -> None:
    error = refusal(workspace_check, given, command, MALLORY)
    assert (error.code, error.kind) == ("workspace.not_found", "not_found")


@pytest.mark.parametrize("command", MANAGE)
def test_a_workspaces_operator_manages_any(command: WorkspaceCommand) -> None:
    workspace_check(TEAM, command, WORKSPACE_OPERATOR)


def test_only_an_owner_grants_owner() -> None:
    workspace_check(TEAM, AddWorkspaceMember(user_id="erin", role="owner"), ALICE)
    error = refusal(workspace_check, TEAM, AddWorkspaceMember(user_id="erin", role="owner"),
                    Actor("bob"))  # fmt: skip
    assert error.code == "workspace.forbidden"
    workspace_check(TEAM, AddWorkspaceMember(user_id="erin", role="admin"), Actor("bob"))


def test_only_an_owner_removes_an_owner() -> None:
    workspace_check(TEAM, RemoveWorkspaceMember(user_id="dave"), ALICE)
    error = refusal(workspace_check, TEAM, RemoveWorkspaceMember(user_id="dave"), Actor("bob"))
    assert error.code == "workspace.forbidden"


@pytest.mark.parametrize("who", ["carol", "bob", "dave"])
def test_any_member_may_leave(who: str) -> None:
    workspace_check(TEAM, RemoveWorkspaceMember(user_id=who), Actor(who))


def test_the_last_owner_cannot_leave() -> None:
    alone = TEAM[:2]
    workspace_check(alone, RemoveWorkspaceMember(user_id="alice"), ALICE)  # allowed to ask...
    state = reduce(WORKSPACE.evolve, alone, WORKSPACE.initial_state)
    with pytest.raises(DomainError) as info:  # ...but the rule refuses
        WORKSPACE.decide(state, RemoveWorkspaceMember(user_id="alice"))
    assert info.value.code == "workspace.cannot_remove_owner"


def test_one_of_two_owners_may_leave() -> None:
    state = reduce(WORKSPACE.evolve, TEAM, WORKSPACE.initial_state)
    assert WORKSPACE.decide(state, RemoveWorkspaceMember(user_id="alice"))
