"""Blue/green versions of projections in PostgreSQL: the registry, version schemas, views.

Version N of projection P lives in schema `proj_<P>_v<N>` (its tables plus `checkpoints`).
`public.projection_registry` names the live version, and the public views (`public.users`,
... and `public.projection_checkpoints`) point at it, so queries never name a version.
"""

from __future__ import annotations

from typing import Any, Literal

from psycopg import Connection, sql

from projections.catalog import PROJECTIONS, schema_name
from projections.model import Projection, Table

# Taken by every transaction that changes the registry or repoints views, so a replay's swap
# and a migration never interleave.
CATALOG_LOCK = 0x6E65787573  # "nexus"

REGISTRY_DDL = """
CREATE TABLE IF NOT EXISTS public.projection_registry (
    name text PRIMARY KEY,
    live_version integer NOT NULL
)"""

CHECKPOINTS_DDL = """
CREATE TABLE IF NOT EXISTS {schema}.checkpoints (
    topic text NOT NULL,
    partition integer NOT NULL,
    next_offset bigint NOT NULL,
    PRIMARY KEY (topic, partition)
)"""

RowLock = Literal["", "share", "update"]


def lock_catalog(conn: Connection[Any]) -> None:
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (CATALOG_LOCK,))


def live_version(conn: Connection[Any], name: str, lock: RowLock = "") -> int | None:
    query = "SELECT live_version FROM public.projection_registry WHERE name = %s"
    if lock:
        query += f" FOR {lock.upper()}"
    row = conn.execute(query, (name,)).fetchone()
    return None if row is None else int(row[0])


def set_live_version(conn: Connection[Any], name: str, version: int) -> None:
    conn.execute(
        "INSERT INTO public.projection_registry (name, live_version) VALUES (%s, %s)"
        " ON CONFLICT (name) DO UPDATE SET live_version = EXCLUDED.live_version",
        (name, version),
    )


def create_version(conn: Connection[Any], projection: Projection, version: int) -> None:
    """Create the version's schema, tables and checkpoints if they do not exist yet."""
    schema = sql.Identifier(schema_name(projection.name, version))
    conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(schema))
    for table in projection.tables:
        conn.execute(_table_ddl(schema, table))
        for columns in table.indexes:
            conn.execute(_index_ddl(schema, table, columns))
    conn.execute(sql.SQL(CHECKPOINTS_DDL).format(schema=schema))


def _table_ddl(schema: sql.Identifier, table: Table) -> sql.Composed:
    columns = [sql.SQL("{} {}").format(sql.Identifier(n), sql.SQL(t)) for n, t in table.columns]
    key = sql.SQL("PRIMARY KEY ({})").format(sql.SQL(", ").join(map(sql.Identifier, table.key)))
    return sql.SQL("CREATE TABLE IF NOT EXISTS {}.{} ({})").format(
        schema, sql.Identifier(table.name), sql.SQL(", ").join([*columns, key])
    )


def _index_ddl(schema: sql.Identifier, table: Table, columns: tuple[str, ...]) -> sql.Composed:
    name = "_".join((table.name, *columns, "idx"))
    return sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {}.{} ({})").format(
        sql.Identifier(name),
        schema,
        sql.Identifier(table.name),
        sql.SQL(", ").join(map(sql.Identifier, columns)),
    )


def versions_present(conn: Connection[Any], name: str) -> list[int]:
    """Every version of the projection that has a schema, live or not."""
    prefix = schema_name(name, 0)[:-1]
    rows = conn.execute(
        "SELECT substr(nspname, %s)::int FROM pg_namespace WHERE nspname ~ %s ORDER BY 1",
        (len(prefix) + 1, f"^{prefix}[0-9]+$"),
    ).fetchall()
    return [int(version) for (version,) in rows]


def drop_version(conn: Connection[Any], name: str, version: int) -> None:
    conn.execute(
        sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
            sql.Identifier(schema_name(name, version))
        )
    )


def views_exist(conn: Connection[Any], names: list[str]) -> bool:
    row = conn.execute(
        "SELECT count(*) FROM pg_views WHERE schemaname = 'public' AND viewname = ANY(%s)",
        (names,),
    ).fetchone()
    return row is not None and row[0] == len(set(names))


def point_views(conn: Connection[Any], projection: Projection, version: int) -> None:
    """Repoint the projection's public views at `version`; the caller holds the catalog lock."""
    schema = sql.Identifier(schema_name(projection.name, version))
    for table in projection.tables:
        conn.execute(
            sql.SQL(
                "CREATE OR REPLACE VIEW public.{table} AS SELECT * FROM {schema}.{table}"
            ).format(table=sql.Identifier(table.name), schema=schema)
        )


def refresh_checkpoint_view(conn: Connection[Any]) -> None:
    """`public.projection_checkpoints`: every live version's checkpoints, by projection name."""
    rows = conn.execute("SELECT name, live_version FROM public.projection_registry").fetchall()
    parts = [
        sql.SQL(
            "SELECT {name}::text AS name, topic, partition, next_offset FROM {schema}.checkpoints"
        ).format(name=sql.Literal(name), schema=sql.Identifier(schema_name(name, version)))
        for name, version in sorted(rows)
        if name in PROJECTIONS
    ]
    conn.execute(
        sql.SQL("CREATE OR REPLACE VIEW public.projection_checkpoints AS {}").format(
            sql.SQL(" UNION ALL ").join(parts)
        )
    )
