"""Events of the workspace aggregate, mirroring the `workspace.*` Avro schemas field for field."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar


@dataclass(frozen=True)
class WorkspaceCreated:
    TYPE: ClassVar[str] = "workspace.created"
    name: str
    owner_id: str


@dataclass(frozen=True)
class WorkspaceRenamed:
    TYPE: ClassVar[str] = "workspace.renamed"
    name: str


@dataclass(frozen=True)
class WorkspaceMemberAdded:
    TYPE: ClassVar[str] = "workspace.member_added"
    user_id: str
    role: str


@dataclass(frozen=True)
class WorkspaceMemberRemoved:
    TYPE: ClassVar[str] = "workspace.member_removed"
    user_id: str


@dataclass(frozen=True)
class WorkspaceArchived:
    TYPE: ClassVar[str] = "workspace.archived"
    reason: str | None = None


WorkspaceEvent = (
    WorkspaceCreated
    | WorkspaceRenamed
    | WorkspaceMemberAdded
    | WorkspaceMemberRemoved
    | WorkspaceArchived
)
