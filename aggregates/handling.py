"""The command side's logic, free of Kafka: fold events into state, decide one command.

The processor feeds it decoded records and ships what it returns in one Kafka transaction.
Event ids derive from the command id, so a retried command yields the very same events.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aggregates.actor import Actor
from aggregates.errors import DomainError
from aggregates.registry import (
    COMMANDS,
    DECIDERS,
    command_from_data,
    event_from_data,
    event_to_data,
)

EVENT_ID_NAMESPACE = uuid.UUID("6f2f7f0e-3c1e-4a51-9a7e-5f1d0c0a9e11")
Record = dict[str, Any]


@dataclass
class AggregateStates:
    """Current state and version of each aggregate on one partition."""

    states: dict[tuple[str, str], tuple[Any, int]] = field(default_factory=dict)
    parent: AggregateStates | None = None

    def get(self, aggregate_type: str, aggregate_id: str) -> tuple[Any, int]:
        found = self.states.get((aggregate_type, aggregate_id))
        if found:
            return found
        if self.parent is not None:
            return self.parent.get(aggregate_type, aggregate_id)
        return (DECIDERS[aggregate_type].initial_state, 0)

    def overlay(self) -> AggregateStates:
        """Staged changes for one transaction; merged only once it commits."""
        return AggregateStates(parent=self)

    def merge(self, staged: AggregateStates) -> None:
        self.states.update(staged.states)

    def set(self, aggregate_type: str, aggregate_id: str, state: Any, version: int) -> None:
        self.states[(aggregate_type, aggregate_id)] = (state, version)

    def apply(self, record: Record) -> None:
        """Fold one stored event; events of aggregates nobody decides here are not ours."""
        decider = DECIDERS.get(record["aggregate_type"])
        if decider is None:
            return
        state, _ = self.get(record["aggregate_type"], record["aggregate_id"])
        event = event_from_data(record["type"], record["data"])
        state = decider.evolve(state, event)
        self.set(
            record["aggregate_type"], record["aggregate_id"], state, record["aggregate_version"]
        )


@dataclass
class Decision:
    command: Record
    events: list[Record]
    outcome: Record
    state: Any
    version: int

    @property
    def accepted(self) -> bool:
        return bool(self.outcome["status"] == "accepted")


def decide_command(
    states: AggregateStates, command: Record, now: Callable[[], datetime]
) -> Decision:
    """Decide one decoded command record against the current states (which stay untouched)."""
    agg_type, agg_id = command["aggregate_type"], command["aggregate_id"]
    at = now()
    decider = COMMANDS.get(command["type"])
    if decider is None or decider.aggregate_type != agg_type:
        reject = _rejection(command, None, None, at)
        return reject(
            "command.unknown", "invalid", f"{command['type']} is not a {agg_type} command"
        )
    state, version = states.get(agg_type, agg_id)
    reject = _rejection(command, state, version, at)
    # Authorized before the version check, so a stranger learns nothing of the aggregate.
    actor = Actor(command["actor"], frozenset(command.get("actor_scopes") or ()))
    try:
        wanted = command_from_data(command["type"], command["data"])
        decider.authorize(state, wanted, actor, agg_id)
        expected = command.get("expected_version")
        if expected is not None and expected != version:
            detail = f"expected version {expected}, aggregate is at {version}"
            return reject("version_conflict", "precondition", detail)
        events = decider.decide(state, wanted)
    except DomainError as err:
        return reject(err.code, err.kind, err.message)
    records = []
    for offset, event in enumerate(events, start=1):
        state = decider.evolve(state, event)
        records.append(_event_record(command, event, version + offset, offset, at))
    version += len(records)
    outcome = _outcome(command, "accepted", version, at, [r["event_id"] for r in records])
    return Decision(command, records, outcome, state, version)


def _event_record(command: Record, event: Any, version: int, index: int, at: datetime) -> Record:
    return {
        "event_id": str(uuid.uuid5(EVENT_ID_NAMESPACE, f"{command['command_id']}/{index}")),
        "type": event.TYPE,
        "aggregate_type": command["aggregate_type"],
        "aggregate_id": command["aggregate_id"],
        "aggregate_version": version,
        "occurred_at": at,
        "correlation_id": command["correlation_id"],
        "causation_id": command["command_id"],
        "actor": command["actor"],
        "data": event_to_data(event),
    }


def _rejection(
    command: Record, state: Any, version: int | None, at: datetime
) -> Callable[[str, str, str], Decision]:
    def reject(code: str, kind: str, message: str) -> Decision:
        outcome = _outcome(command, "rejected", version, at, [])
        outcome.update(error_code=code, error_kind=kind, error_message=message)
        return Decision(command, [], outcome, state, version or 0)

    return reject


def _outcome(
    command: Record, status: str, version: int | None, at: datetime, event_ids: list[str]
) -> Record:
    return {
        "command_id": command["command_id"],
        "command_type": command["type"],
        "aggregate_type": command["aggregate_type"],
        "aggregate_id": command["aggregate_id"],
        "correlation_id": command["correlation_id"],
        "status": status,
        "version": version,
        "position": None,
        "event_ids": event_ids,
        "error_code": None,
        "error_kind": None,
        "error_message": None,
        "decided_at": at,
    }


def internal_error(command: Record, at: datetime) -> Decision:
    """A command whose handling raised: rejected, so the partition moves on."""
    return _rejection(command, None, None, at)("internal_error", "internal", "the command failed")
