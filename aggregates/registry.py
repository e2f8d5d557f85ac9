"""Every aggregate's decider, looked up by aggregate type or command name, plus data helpers.

The helpers turn events and commands into the plain data carried by envelopes
(JSON for the gateway, Avro records on Kafka) and back again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, get_args

from aggregates import codec
from aggregates.actor import Actor
from aggregates.errors import DomainError
from aggregates.user import access as user_access
from aggregates.user import decider as user
from aggregates.user.commands import UserCommand
from aggregates.user.events import UserEvent
from aggregates.user.state import UserState
from aggregates.workspace import access as workspace_access
from aggregates.workspace import decider as workspace
from aggregates.workspace.commands import WorkspaceCommand
from aggregates.workspace.events import WorkspaceEvent
from aggregates.workspace.state import WorkspaceState

S = TypeVar("S")
C = TypeVar("C")
E = TypeVar("E")

Event = UserEvent | WorkspaceEvent
Command = UserCommand | WorkspaceCommand


@dataclass(frozen=True)
class Decider(Generic[S, C, E]):
    aggregate_type: str
    initial_state: S
    decide: Callable[[S, C], list[E]]
    evolve: Callable[[S, E], S]
    # (state, command, actor, aggregate id): raises a DomainError if the actor may not.
    authorize: Callable[[S, C, Actor, str], None]
    event_types: dict[str, type[E]]
    command_types: dict[str, type[C]]


def _event_types(union: object) -> dict[str, Any]:
    return {cls.TYPE: cls for cls in get_args(union)}


def _command_types(union: object) -> dict[str, Any]:
    return {cls.NAME: cls for cls in get_args(union)}


USER: Decider[UserState, UserCommand, UserEvent] = Decider(
    aggregate_type="user",
    initial_state=user.initial_state,
    decide=user.decide,
    evolve=user.evolve,
    authorize=user_access.authorize,
    event_types=_event_types(UserEvent),
    command_types=_command_types(UserCommand),
)

WORKSPACE: Decider[WorkspaceState, WorkspaceCommand, WorkspaceEvent] = Decider(
    aggregate_type="workspace",
    initial_state=workspace.initial_state,
    decide=workspace.decide,
    evolve=workspace.evolve,
    authorize=workspace_access.authorize,
    event_types=_event_types(WorkspaceEvent),
    command_types=_command_types(WorkspaceCommand),
)

DECIDERS: dict[str, Decider[Any, Any, Any]] = {d.aggregate_type: d for d in (USER, WORKSPACE)}
COMMANDS: dict[str, Decider[Any, Any, Any]] = {
    name: d for d in DECIDERS.values() for name in d.command_types
}
_EVENT_TYPES: dict[str, type[Event]] = {
    event_type: cls for d in DECIDERS.values() for event_type, cls in d.event_types.items()
}
_COMMAND_TYPES: dict[str, type[Command]] = {
    name: cls for d in DECIDERS.values() for name, cls in d.command_types.items()
}


def event_to_data(event: Event) -> dict[str, Any]:
    return codec.to_data(event)


def event_from_data(event_type: str, data: Mapping[str, Any]) -> Event:
    """Rebuild an event read from the log; raises `codec.DataError` (a ValueError) if corrupt."""
    cls = _EVENT_TYPES.get(event_type)
    if cls is None:
        raise codec.DataError(f"unknown event type {event_type!r}")
    return codec.from_data(cls, data)


def command_to_data(command: Command) -> dict[str, Any]:
    return codec.to_data(command)


def command_from_data(name: str, data: Mapping[str, Any]) -> Command:
    """Build a command from client input; bad input is a DomainError so the gateway answers 422."""
    cls = _COMMAND_TYPES.get(name)
    if cls is None:
        raise DomainError.invalid("command.unknown", f"unknown command {name!r}")
    try:
        return codec.from_data(cls, data)
    except codec.DataError as error:
        raise DomainError.invalid("command.invalid_payload", str(error)) from error
