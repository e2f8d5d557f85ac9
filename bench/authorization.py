"""What the per-object authorization rules cost the command side, side by side.

The same commands are decided in-process (`decide_command`, no Kafka) with every decider's
`authorize` in place and with it swapped for a no-op, in alternating rounds, best of each kept.
The commands are the ones the rules look at most: a member added by a workspace's owner and a
profile changed by its own user, so every rule runs on a state that lets it through.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from aggregates.handling import AggregateStates, decide_command
from aggregates.registry import COMMANDS
from bench.report import Figure, Outcome

NAME = "authz"
USERS = 2_000
ROUNDS = 3
TARGET_RATIO = 0.9
AT = datetime(2026, 1, 1, tzinfo=UTC)


def run(_env: object) -> Outcome:
    states, commands = _workload()
    rates: dict[str, list[float]] = {"on": [], "off": []}
    for _ in range(ROUNDS):
        rates["on"].append(_decided_per_second(states, commands))
        with _authorization_skipped():
            rates["off"].append(_decided_per_second(states, commands))
    on, off = max(rates["on"]), max(rates["off"])
    figure = Figure(
        "commands decided/s, authorization on", "/s", on, off, "same, authorize() a no-op",
        f">= {TARGET_RATIO:.0%} of off", on >= TARGET_RATIO * off,
    )  # fmt: skip
    notes = [
        f"rounds: on {', '.join(f'{r:,.0f}/s' for r in rates['on'])}; "
        f"off {', '.join(f'{r:,.0f}/s' for r in rates['off'])} "
        f"({len(commands):,} commands each, in-process, no Kafka)"
    ]
    return Outcome(NAME, [figure], notes, {"rates": rates, "commands": len(commands)})


def _decided_per_second(states: AggregateStates, commands: list[dict[str, Any]]) -> float:
    started = time.perf_counter()
    for command in commands:
        decision = decide_command(states, command, lambda: AT)
        if not decision.accepted:
            raise AssertionError(f"bench command refused: {decision.outcome}")
    return len(commands) / (time.perf_counter() - started)


@contextmanager
def _authorization_skipped() -> Iterator[None]:
    saved = dict(COMMANDS)
    for name, decider in saved.items():
        COMMANDS[name] = dataclasses.replace(decider, authorize=lambda *_: None)
    try:
        yield
    finally:
        COMMANDS.update(saved)


def _workload() -> tuple[AggregateStates, list[dict[str, Any]]]:
    """Users u0.., each owning workspace w<n>; then each adds a member and renames itself."""
    states = AggregateStates()
    setup: list[dict[str, Any]] = []
    work: list[dict[str, Any]] = []
    for n in range(USERS):
        user, workspace = f"u{n}", f"w{n}"
        setup.append(_command("RegisterUser", "user", user, user, email=f"{user}@example.com",
                              name=user, locale=None))  # fmt: skip
        setup.append(_command("CreateWorkspace", "workspace", workspace, user, name=workspace,
                              owner_id=user))  # fmt: skip
        work.append(_command("AddWorkspaceMember", "workspace", workspace, user,
                             user_id=f"u{(n + 1) % USERS}", role="member"))  # fmt: skip
        work.append(_command("UpdateUserProfile", "user", user, user, name=f"{user} renamed"))
    for command in setup:
        decision = decide_command(states, command, lambda: AT)
        if not decision.accepted:
            raise AssertionError(f"bench set-up refused: {decision.outcome}")
        states.set(command["aggregate_type"], command["aggregate_id"], decision.state,
                   decision.version)  # fmt: skip
    return states, work


def _command(type_: str, aggregate_type: str, aggregate_id: str, actor: str,
             **data: Any) -> dict[str, Any]:  # fmt: skip
    return {
        "command_id": f"{type_}-{aggregate_id}",
        "type": type_,
        "aggregate_type": aggregate_type,
        "aggregate_id": aggregate_id,
        "expected_version": None,
        "issued_at": AT,
        "correlation_id": "bench",
        "actor": actor,
        "actor_scopes": [],
        "data": data,
    }
