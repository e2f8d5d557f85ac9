"""Who issues a command: the token's subject and scopes, as deciders see them.

The gateway puts both on the command envelope (`actor`, `actor_scopes`); the command
processor hands them to each aggregate's `authorize`, so every rule about who may act on
which object lives beside the aggregate's other rules, pure and tested given/when/then.
"""

from __future__ import annotations

from dataclasses import dataclass

# Operator scopes: `nexus token` grants none of them by default (README, "Scopes").
USERS_ADMIN = "users:admin"
WORKSPACES_ADMIN = "workspaces:admin"


@dataclass(frozen=True)
class Actor:
    subject: str
    scopes: frozenset[str] = frozenset()

    def holds(self, scope: str) -> bool:
        return scope in self.scopes
