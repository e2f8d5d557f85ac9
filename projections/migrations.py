"""Creates the projection registry, version 1 of every projection and the public views,
the notification delivery ledger, the gateway's table of published event ids and the
projector's audit of applications.

Idempotent and safe to run from several processes at once: everything happens in one
transaction under an advisory lock. Views that exist are left alone, because repointing
a view waits for every open transaction that read it.
"""

from __future__ import annotations

from typing import Any

from psycopg import Connection

from projections import store, versions
from projections.catalog import PROJECTIONS
from projections.model import Projection
from projections.published_events import ensure_published_events
from sagas.adapters.postgres_ledger import ensure_ledger


def migrate(database_url: str) -> None:
    with store.connect(database_url) as conn, conn.transaction():
        versions.lock_catalog(conn)
        conn.execute(versions.REGISTRY_DDL)
        created = [_ensure_live_version(conn, p) for p in PROJECTIONS.values()]
        if any(created) or not versions.views_exist(conn, ["projection_checkpoints"]):
            versions.refresh_checkpoint_view(conn)
        # Not projections, but the gateway uses them before any worker may have run.
        ensure_ledger(conn)
        ensure_published_events(conn)
        conn.execute(store.APPLICATIONS_DDL)  # written only with NEXUS_PROJECTION_AUDIT


def _ensure_live_version(conn: Connection[Any], projection: Projection) -> bool:
    """Create the live version and its views unless they exist; True if anything was made."""
    version = versions.live_version(conn, projection.name)
    if version is None:
        version = 1
        versions.set_live_version(conn, projection.name, version)
    elif versions.views_exist(conn, [table.name for table in projection.tables]):
        return False
    versions.create_version(conn, projection, version)
    versions.point_views(conn, projection, version)
    return True
