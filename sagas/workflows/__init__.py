"""Domain-event workflows: configured reactions that ask for notifications.

`parse_workflows` reads `infra/config/workflows.toml`; `plan` turns one event into the
`notification.submitted` requests its workflows ask for. Both are pure: the rows they read
come through the `Lookups` port, and time comes from the event.
"""

from sagas.workflows.config import Workflow, WorkflowConfigError, parse_workflows
from sagas.workflows.evaluation import Lookups, Row
from sagas.workflows.expressions import SETTING_NAMES
from sagas.workflows.planning import (
    Plan,
    Skipped,
    idempotency_key,
    notification_id,
    plan,
    reacting,
)

__all__ = [
    "SETTING_NAMES",
    "Lookups",
    "Plan",
    "Row",
    "Skipped",
    "Workflow",
    "WorkflowConfigError",
    "idempotency_key",
    "notification_id",
    "parse_workflows",
    "plan",
    "reacting",
]
