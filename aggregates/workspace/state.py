"""State of one workspace, folded from its events."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Member:
    user_id: str
    role: str


@dataclass(frozen=True)
class WorkspaceState:
    created: bool = False
    archived: bool = False
    name: str = ""
    owner_id: str = ""
    # A tuple keeps join order, which listings show; workspaces are small enough to scan.
    members: tuple[Member, ...] = ()

    def role_of(self, user_id: str) -> str | None:
        return next((m.role for m in self.members if m.user_id == user_id), None)


initial_state = WorkspaceState()
