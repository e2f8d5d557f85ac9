"""Who may issue which workspace command, by the actor's role in the workspace.

- Create: the owner is the actor, unless the actor holds workspaces:admin.
- Rename, archive, add and remove members: owner or admin; any member may remove itself.
- Granting the owner role, or removing an owner: owners only.
- Holders of workspaces:admin may do everything.
A workspace the actor is not a member of is answered as not found, so its existence stays
hidden; a member lacking the role is refused as forbidden.
"""

from __future__ import annotations

from typing import assert_never

from aggregates.actor import WORKSPACES_ADMIN, Actor
from aggregates.errors import DomainError
from aggregates.workspace.commands import (
    AddWorkspaceMember,
    ArchiveWorkspace,
    CreateWorkspace,
    RemoveWorkspaceMember,
    RenameWorkspace,
    WorkspaceCommand,
)
from aggregates.workspace.state import WorkspaceState

MANAGERS = frozenset({"owner", "admin"})


def authorize(
    state: WorkspaceState, command: WorkspaceCommand, actor: Actor, workspace_id: str
) -> None:
    """Raise a DomainError unless `actor` may issue `command` on this workspace."""
    if actor.holds(WORKSPACES_ADMIN):
        return
    if isinstance(command, CreateWorkspace):
        if command.owner_id != actor.subject:
            raise _forbidden(f"only a holder of {WORKSPACES_ADMIN} creates a workspace for others")
        return
    role = state.role_of(actor.subject) if state.created else None
    if role is None:
        raise DomainError.not_found("workspace.not_found", "workspace does not exist")
    if not _role_allows(state, command, actor, role):
        raise _forbidden(f"a workspace {role} may not do this")


def _role_allows(state: WorkspaceState, command: WorkspaceCommand, actor: Actor, role: str) -> bool:
    match command:
        case CreateWorkspace():
            return False  # decided above: the workspace exists already
        case RenameWorkspace() | ArchiveWorkspace():
            return role in MANAGERS
        case AddWorkspaceMember():
            return role == "owner" if command.role == "owner" else role in MANAGERS
        case RemoveWorkspaceMember():
            if command.user_id == actor.subject:
                return True
            if state.role_of(command.user_id) == "owner":
                return role == "owner"
            return role in MANAGERS
        case _:
            assert_never(command)


def _forbidden(message: str) -> DomainError:
    return DomainError.forbidden("workspace.forbidden", message)
