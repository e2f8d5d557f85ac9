"""Who may issue which user command: a user acts on itself; operators act on anyone.

The rule does not depend on whether the user exists, so a refusal never tells a stranger
that an id is taken.
"""

from __future__ import annotations

from aggregates.actor import USERS_ADMIN, Actor
from aggregates.errors import DomainError
from aggregates.user.commands import UserCommand
from aggregates.user.state import UserState


def authorize(state: UserState, command: UserCommand, actor: Actor, user_id: str) -> None:
    """Raise `user.forbidden` unless `actor` is user `user_id` or holds users:admin."""
    if actor.subject == user_id or actor.holds(USERS_ADMIN):
        return
    raise DomainError.forbidden(
        "user.forbidden", f"only the user itself or a holder of {USERS_ADMIN} may do this"
    )
