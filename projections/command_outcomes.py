"""The command_outcomes read model: what the command processor decided, by command id."""

from __future__ import annotations

from projections.model import Event, Projection, RowCache, Table

COMMAND_OUTCOMES = Table(
    name="command_outcomes",
    columns=(
        ("command_id", "text NOT NULL"),
        ("command_type", "text NOT NULL"),
        ("aggregate_type", "text NOT NULL"),
        ("aggregate_id", "text NOT NULL"),
        ("correlation_id", "text NOT NULL"),
        ("status", "text NOT NULL"),
        ("version", "bigint"),
        ("position", "text"),
        ("event_ids", "jsonb NOT NULL DEFAULT '[]'"),
        ("error_code", "text"),
        ("error_kind", "text"),
        ("error_message", "text"),
        ("decided_at", "timestamptz NOT NULL"),
    ),
    key=("command_id",),
)


def _decided(rows: RowCache, outcome: Event) -> None:
    """A command has one outcome; a re-sent outcome carries the same decision."""
    row = {name: outcome.get(name) for name in COMMAND_OUTCOMES.column_names}
    row["event_ids"] = list(outcome.get("event_ids") or [])
    rows.put(COMMAND_OUTCOMES.name, (outcome["command_id"],), row)


COMMAND_OUTCOMES_PROJECTION = Projection(
    name="command_outcomes",
    topic="outcomes",
    tables=(COMMAND_OUTCOMES,),
    handlers={"command.outcome": _decided},
)
