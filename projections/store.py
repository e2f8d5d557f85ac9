"""Batched row and checkpoint I/O for one projection version in PostgreSQL.

A batch reads the rows it touches with one query per table and writes them back with
one COPY into a temporary staging table plus one upsert, whatever the batch size.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

import psycopg
from psycopg import Connection, sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from projections.model import Key, Projection, Row, RowCache, Table

RowKeys = Mapping[str, Iterable[Key]]


def connect(database_url: str, *, durable_commits: bool = False) -> Connection[Any]:
    """An autocommit connection: every unit of work opens its own `conn.transaction()`.

    By default a commit does not wait for the WAL flush: rows and checkpoint commit
    together and Kafka holds the events, so for a reader that resumes from these
    checkpoints (the projector, a replay) a commit lost to a PostgreSQL crash takes its
    checkpoint with it and is simply applied again. A reader that resumes from offsets
    committed elsewhere (the Faust worker commits to Kafka once a batch is applied) needs
    `durable_commits`, or a lost commit would be skipped for good."""
    conn = psycopg.connect(database_url, autocommit=True)
    # CREATE TEMP TABLE IF NOT EXISTS would otherwise send a notice on every batch.
    conn.execute("SET client_min_messages TO warning")
    if not durable_commits:
        conn.execute("SET synchronous_commit TO off")
    return conn


@dataclass(frozen=True)
class TableStatements:
    """The SQL of one table in one version schema, composed once."""

    select: sql.Composed
    create_stage: sql.Composed
    truncate_stage: sql.Composed
    copy_stage: sql.Composed
    upsert: sql.Composed
    delete: sql.Composed
    copy_in: sql.Composed  # straight into the table: for rows it does not hold yet


@cache
def statements(schema: str, table: Table) -> TableStatements:
    target = sql.Identifier(schema, table.name)
    stage = sql.Identifier(f"stage_{schema}_{table.name}")
    columns = sql.SQL(", ").join(map(sql.Identifier, table.column_names))
    key = sql.SQL(", ").join(map(sql.Identifier, table.key))
    updates = sql.SQL(", ").join(
        sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(name))
        for name in table.column_names
        if name not in table.key
    )
    return TableStatements(
        select=sql.SQL("SELECT {} FROM {} WHERE {}").format(columns, target, _key_match(table)),
        create_stage=sql.SQL(
            "CREATE TEMP TABLE IF NOT EXISTS {} (LIKE {}) ON COMMIT DELETE ROWS"
        ).format(stage, target),
        truncate_stage=sql.SQL("TRUNCATE {}").format(stage),
        copy_stage=sql.SQL("COPY {} ({}) FROM STDIN").format(stage, columns),
        upsert=sql.SQL(
            "INSERT INTO {target} ({columns}) SELECT {columns} FROM {stage}"
            " ON CONFLICT ({key}) DO UPDATE SET {updates}"
        ).format(target=target, columns=columns, stage=stage, key=key, updates=updates),
        delete=sql.SQL("DELETE FROM {} WHERE {}").format(target, _key_match(table)),
        copy_in=sql.SQL("COPY {} ({}) FROM STDIN").format(target, columns),
    )


def _key_match(table: Table) -> sql.Composable:
    """A WHERE clause matching any of a list of keys, one array parameter per key column."""
    types = dict(table.columns)
    if len(table.key) == 1:
        return sql.SQL("{} = ANY(%s)").format(sql.Identifier(table.key[0]))
    names = sql.SQL(", ").join(map(sql.Identifier, table.key))
    arrays = sql.SQL(", ").join(
        sql.SQL("%s::{}[]").format(sql.SQL(types[name].split()[0])) for name in table.key
    )
    return sql.SQL("({names}) IN (SELECT * FROM unnest({arrays}))").format(
        names=names, arrays=arrays
    )


def _key_params(keys: list[Key]) -> list[list[Any]]:
    return [list(column) for column in zip(*keys, strict=True)]


def load_rows(
    conn: Connection[Any], schema: str, projection: Projection, keys: RowKeys
) -> RowCache:
    """A cache primed with the existing rows of every (table, key) in `keys`."""
    primed = RowCache()
    for table in projection.tables:
        wanted = list(keys.get(table.name, ()))
        if not wanted:
            continue
        with conn.cursor(row_factory=dict_row) as cur:
            cur.execute(statements(schema, table).select, _key_params(wanted))
            primed.rows[table.name] = {table.key_of(row): row for row in cur}
    return primed


def write_rows(conn: Connection[Any], schema: str, projection: Projection, rows: RowCache) -> int:
    """Write back the changed rows; returns how many rows were upserted or deleted."""
    written = 0
    for table in projection.tables:
        upserts, deletes = rows.changes(table.name)
        upsert_rows(conn, schema, table, upserts)
        delete_rows(conn, schema, table, deletes)
        written += len(upserts) + len(deletes)
    return written


def upsert_rows(conn: Connection[Any], schema: str, table: Table, rows: list[Row]) -> None:
    if not rows:
        return
    stmts = statements(schema, table)
    with conn.cursor() as cur:
        cur.execute(stmts.create_stage)
        cur.execute(stmts.truncate_stage)
        _copy(cur, stmts.copy_stage, table, rows)
        cur.execute(stmts.upsert)


def insert_rows(conn: Connection[Any], schema: str, table: Table, rows: list[Row]) -> None:
    """Rows whose keys the table does not hold: one COPY, no staging, no conflict to check."""
    if rows:
        with conn.cursor() as cur:
            _copy(cur, statements(schema, table).copy_in, table, rows)


def delete_rows(conn: Connection[Any], schema: str, table: Table, keys: list[Key]) -> None:
    if keys:
        conn.execute(statements(schema, table).delete, _key_params(keys))


def _copy(cur: psycopg.Cursor[Any], statement: sql.Composed, table: Table, rows: list[Row]) -> None:
    columns = [(name, name in table.json_columns) for name in table.column_names]
    with cur.copy(statement) as copy:
        for row in rows:
            copy.write_row([_dumpable(row[c], is_json) for c, is_json in columns])


def _dumpable(value: Any, is_json: bool) -> Any:
    return Jsonb(value) if is_json and value is not None else value


APPLICATIONS_DDL = """
CREATE TABLE IF NOT EXISTS projection_applications (
    version_schema text NOT NULL,
    partition integer NOT NULL,
    "offset" bigint NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)"""


def record_applications(
    conn: Connection[Any], schema: str, positions: Iterable[tuple[int, int]]
) -> None:
    """One row per event applied, in the batch's transaction (NEXUS_PROJECTION_AUDIT)."""
    copy_in = 'COPY projection_applications (version_schema, partition, "offset") FROM STDIN'
    with conn.cursor() as cur, cur.copy(copy_in) as copy:
        for partition, offset in positions:
            copy.write_row((schema, partition, offset))


def load_checkpoints(conn: Connection[Any], schema: str, topic: str) -> dict[int, int]:
    """partition -> next offset to read, for the partitions this version has checkpointed."""
    query = sql.SQL("SELECT partition, next_offset FROM {} WHERE topic = %s").format(
        sql.Identifier(schema, "checkpoints")
    )
    return {int(p): int(o) for p, o in conn.execute(query, (topic,)).fetchall()}


def save_checkpoints(
    conn: Connection[Any], schema: str, topic: str, offsets: Mapping[int, int]
) -> None:
    query = sql.SQL(
        "INSERT INTO {} (topic, partition, next_offset) VALUES (%s, %s, %s)"
        " ON CONFLICT (topic, partition) DO UPDATE SET next_offset = EXCLUDED.next_offset"
    ).format(sql.Identifier(schema, "checkpoints"))
    with conn.cursor() as cur:
        cur.executemany(query, [(topic, p, o) for p, o in sorted(offsets.items())])
