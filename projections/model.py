"""What a projection is: its tables and a fold of decoded events into rows, free of any I/O.

A batch of events is folded into a `RowCache` holding only the rows the batch touches;
the store loads those rows first and writes the changed ones back afterwards, so a batch
costs a few SQL statements however many events it holds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

Row = dict[str, Any]
Key = tuple[Any, ...]
Event = dict[str, Any]
Handler = Callable[["RowCache", Event], None]


@dataclass(frozen=True)
class Table:
    """A read-model table: `columns` are (name, SQL type) pairs, `key` its primary key."""

    name: str
    columns: tuple[tuple[str, str], ...]
    key: tuple[str, ...]
    indexes: tuple[tuple[str, ...], ...] = ()

    @cached_property  # read for every row written: compute once
    def column_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.columns)

    @cached_property
    def json_columns(self) -> frozenset[str]:
        return frozenset(name for name, kind in self.columns if kind.startswith("jsonb"))

    def key_of(self, row: Row) -> Key:
        return tuple(row[name] for name in self.key)


@dataclass
class RowCache:
    """The rows one batch touches: prefetched, changed in memory, then written back once."""

    rows: dict[str, dict[Key, Row | None]] = field(default_factory=dict)
    dirty: dict[str, set[Key]] = field(default_factory=dict)

    # get and put run for every event a replay folds: no throwaway {} or set() per call
    def get(self, table: str, key: Key) -> Row | None:
        rows = self.rows.get(table)
        return None if rows is None else rows.get(key)

    def put(self, table: str, key: Key, row: Row | None) -> None:
        if (rows := self.rows.get(table)) is None:
            rows = self.rows[table] = {}
        rows[key] = row
        if (dirty := self.dirty.get(table)) is None:
            dirty = self.dirty[table] = set()
        dirty.add(key)

    def delete(self, table: str, key: Key) -> None:
        self.put(table, key, None)

    def changes(self, table: str) -> tuple[list[Row], list[Key]]:
        """(rows to upsert, keys to delete) for `table`."""
        current = self.rows.get(table, {})
        upserts: list[Row] = []
        deletes: list[Key] = []
        for key in self.dirty.get(table, ()):
            row = current[key]
            if row is None:
                deletes.append(key)
            else:
                upserts.append(row)
        return upserts, deletes


def no_prefetch(event: Event) -> Iterable[tuple[str, Key]]:
    """For projections whose handlers never read existing rows."""
    return ()


@dataclass(frozen=True)
class Projection:
    """A named read model fed by one logical topic (`events` or `outcomes`).

    `handlers` is keyed by schema name, which for events is the event type. `touches`
    names the rows a handler will read, so a whole batch's rows load in one query per table.
    """

    name: str
    topic: str
    tables: tuple[Table, ...]
    handlers: Mapping[str, Handler]
    touches: Callable[[Event], Iterable[tuple[str, Key]]] = no_prefetch
    # Handlers see the event's partition as event["partition"]: for read models whose rows
    # are per partition, so that each row has a single writer.
    partition_scoped: bool = False

    def handles(self, schema_name: str) -> bool:
        return schema_name in self.handlers

    def fold(self, rows: RowCache, events: Iterable[tuple[str, Event]]) -> None:
        for schema_name, event in events:
            self.handlers[schema_name](rows, event)


def envelope_update(event: Event, row: Row, **changes: Any) -> Row:
    """`row` with `changes`, stamped with the event's aggregate version and time."""
    return {
        **row,
        **changes,
        "version": event["aggregate_version"],
        "updated_at": event["occurred_at"],
    }


def advances(event: Event, row: Row | None) -> bool:
    """Whether `event` moves an existing `row` forward: no event is applied to a row twice."""
    return row is not None and event["aggregate_version"] > row["version"]
