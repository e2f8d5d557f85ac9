"""Creates the projection registry, version 1 of every projection and the public views.

Idempotent and safe to run from several processes at once: everything happens in one
transaction under an advisory lock.
"""

from __future__ import annotations

from projections import store, versions
from projections.catalog import PROJECTIONS


def migrate(database_url: str) -> None:
    with store.connect(database_url) as conn, conn.transaction():
        versions.lock_catalog(conn)
        conn.execute(versions.REGISTRY_DDL)
        for projection in PROJECTIONS.values():
            version = versions.live_version(conn, projection.name)
            if version is None:
                version = 1
                versions.set_live_version(conn, projection.name, version)
            versions.create_version(conn, projection, version)
            versions.point_views(conn, projection, version)
        versions.refresh_checkpoint_view(conn)
