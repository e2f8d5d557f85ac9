"""Commands accepted by the workspace aggregate."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar


@dataclass(frozen=True)
class CreateWorkspace:
    NAME: ClassVar[str] = "CreateWorkspace"
    name: str
    owner_id: str


@dataclass(frozen=True)
class RenameWorkspace:
    NAME: ClassVar[str] = "RenameWorkspace"
    name: str


@dataclass(frozen=True)
class AddWorkspaceMember:
    NAME: ClassVar[str] = "AddWorkspaceMember"
    user_id: str
    role: str = "member"


@dataclass(frozen=True)
class RemoveWorkspaceMember:
    NAME: ClassVar[str] = "RemoveWorkspaceMember"
    user_id: str


@dataclass(frozen=True)
class ArchiveWorkspace:
    NAME: ClassVar[str] = "ArchiveWorkspace"
    reason: str | None = None


WorkspaceCommand = (
    CreateWorkspace
    | RenameWorkspace
    | AddWorkspaceMember
    | RemoveWorkspaceMember
    | ArchiveWorkspace
)
