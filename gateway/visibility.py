"""What a caller may see of a user or a workspace read from the projections.

- A user sees its own full record; a holder of users:admin sees anyone's.
- A user who shares a workspace with the caller is seen as a public profile:
  PUBLIC_USER_FIELDS and the workspaces they share, never email, channels or quiet hours.
- A workspace is seen by its members, and by holders of workspaces:admin.
Anything else is not visible, and the routes answer it as not found.
"""

from __future__ import annotations

from typing import Any

from aggregates.actor import USERS_ADMIN, WORKSPACES_ADMIN
from gateway.auth import Principal

Row = dict[str, Any]
PUBLIC_USER_FIELDS = ("user_id", "name", "status", "version")


def sees_every_user(principal: Principal) -> bool:
    return USERS_ADMIN in principal.scopes


def user_view(principal: Principal, user: Row, my_workspaces: set[str]) -> Row | None:
    """The part of `user` (with its `workspaces`) that `principal`, a member of
    `my_workspaces`, may see; None if nothing."""
    if sees_whole(principal, user):
        return user
    shared = [m for m in user["workspaces"] if m["workspace_id"] in my_workspaces]
    if not shared:
        return None
    return {**{field: user[field] for field in PUBLIC_USER_FIELDS}, "workspaces": shared}


def sees_whole(principal: Principal, user: Row) -> bool:
    return user["user_id"] == principal.subject or USERS_ADMIN in principal.scopes


def listed_user(principal: Principal, user: Row) -> Row:
    """A listing's row: the full record only for the caller itself and operators."""
    if sees_whole(principal, user):
        return user
    return {field: user[field] for field in PUBLIC_USER_FIELDS}


def workspace_view(principal: Principal, workspace: Row | None) -> Row | None:
    if workspace is None or WORKSPACES_ADMIN in principal.scopes:
        return workspace
    members = {member["user_id"] for member in workspace["members"]}
    return workspace if principal.subject in members else None
