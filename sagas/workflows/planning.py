"""From one domain event to the notification requests its workflows ask for; pure.

Ids are derived from (workflow, event, recipient), so planning an event again, after a
crash or a replay, asks for the same notifications, which the saga worker then ignores.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sagas.notification.request import ID_NAMESPACE, NotificationSubmitted, submission
from sagas.workflows.config import DataSpec, Workflow
from sagas.workflows.evaluation import Lookups, Row, Scope, Unresolved, evaluate, holds
from sagas.workflows.expressions import Expression, describe
from schemas.timestamps import epoch_ms

# Fixed forever: changing it would give replayed events new notification ids.
WORKFLOW_NAMESPACE = uuid.uuid5(ID_NAMESPACE, "workflow")


@dataclass(frozen=True)
class Skipped:
    """A workflow that matched the event but asked for nothing, and why."""

    workflow: str
    reason: str


@dataclass(frozen=True)
class Plan:
    requests: tuple[NotificationSubmitted, ...]
    skipped: tuple[Skipped, ...]


def notification_id(workflow: str, event_id: str, recipient: str) -> str:
    return str(uuid.uuid5(WORKFLOW_NAMESPACE, "\x1f".join((workflow, event_id, recipient))))


def idempotency_key(workflow: str, event_id: str, recipient: str) -> str:
    return f"{event_id}/{workflow}/{recipient}"


def reacting(workflows: Sequence[Workflow], event_type: str) -> list[Workflow]:
    """The workflows an event of `event_type` starts, in configuration order."""
    return [workflow for workflow in workflows if workflow.on == event_type]


def plan(
    workflows: Sequence[Workflow],
    event: Mapping[str, Any],
    lookups: Lookups,
    settings: Mapping[str, str | None],
) -> Plan:
    """The requests `event` asks for; `settings` holds expressions.SETTING_NAMES."""
    scope = Scope(event, RowMemo(lookups), settings)
    requests: list[NotificationSubmitted] = []
    skipped: list[Skipped] = []
    for workflow in reacting(workflows, event["type"]):
        try:
            request = _request(workflow, scope)
        except Unresolved as why:
            skipped.append(Skipped(workflow.name, str(why)))
            continue
        if request is not None:
            requests.append(request)
    return Plan(tuple(requests), tuple(skipped))


def _request(workflow: Workflow, scope: Scope) -> NotificationSubmitted | None:
    """None when the workflow's condition is false; raises Unresolved to skip with a reason."""
    if workflow.when is not None and not holds(workflow.when, scope):
        return None
    recipient = _recipient(workflow.recipient, scope)
    event_id = str(scope.event["event_id"])
    try:
        return submission(
            user_id=recipient,
            template=workflow.template,
            data=_data(workflow.data, scope),
            requested_by=f"workflow:{workflow.name}",
            submitted_at=epoch_ms(scope.event["occurred_at"]),
            channels=workflow.channels,
            idempotency_key=idempotency_key(workflow.name, event_id, recipient),
            notification_id=notification_id(workflow.name, event_id, recipient),
        )
    except ValueError as exc:  # e.g. an idempotency key too long for ids this long
        raise Unresolved(str(exc)) from None


def _recipient(expression: Expression, scope: Scope) -> str:
    recipient = evaluate(expression.node, scope)
    if recipient is None or recipient == "":
        raise Unresolved(f"recipient {describe(expression.node)} is unset")
    if not isinstance(recipient, str):
        raise Unresolved(f"recipient {describe(expression.node)} is not a user id: {recipient!r}")
    return recipient


def _data(spec: DataSpec, scope: Scope) -> dict[str, Any]:
    return {
        key: evaluate(value.node, scope) if isinstance(value, Expression) else _data(value, scope)
        for key, value in spec.items()
    }


class RowMemo:
    """Lookups remembered for one event: its workflows read the same rows many times."""

    def __init__(self, lookups: Lookups) -> None:
        self._lookups = lookups
        self._users: dict[str, Row | None] = {}
        self._workspaces: dict[str, Row | None] = {}

    def user(self, user_id: str) -> Row | None:
        if user_id not in self._users:
            self._users[user_id] = self._lookups.user(user_id)
        return self._users[user_id]

    def workspace(self, workspace_id: str) -> Row | None:
        if workspace_id not in self._workspaces:
            self._workspaces[workspace_id] = self._lookups.workspace(workspace_id)
        return self._workspaces[workspace_id]
