"""Every projection by name, and the Postgres schema that holds one version of it."""

from __future__ import annotations

from projections.analytics.rollups import ANALYTICS_PROJECTION
from projections.anomalies.projection import ANOMALIES_PROJECTION
from projections.command_outcomes import COMMAND_OUTCOMES_PROJECTION
from projections.memberships import MEMBERSHIPS_PROJECTION
from projections.model import Projection
from projections.notifications import NOTIFICATIONS_PROJECTION
from projections.users import USERS_PROJECTION
from projections.workspaces import WORKSPACES_PROJECTION

PROJECTIONS: dict[str, Projection] = {
    p.name: p
    for p in (
        USERS_PROJECTION,
        WORKSPACES_PROJECTION,
        MEMBERSHIPS_PROJECTION,
        COMMAND_OUTCOMES_PROJECTION,
        ANALYTICS_PROJECTION,
        NOTIFICATIONS_PROJECTION,
        ANOMALIES_PROJECTION,
    )
}


# Kept live by the analytics worker (Faust), not by the projector; replay handles all.
# The anomalies come from that worker's own anomaly watch, so it builds their read model too.
STREAM_PROCESSED = frozenset({ANALYTICS_PROJECTION.name, ANOMALIES_PROJECTION.name})
PROJECTOR_PROJECTIONS = tuple(name for name in PROJECTIONS if name not in STREAM_PROCESSED)


class UnknownProjection(KeyError):
    def __init__(self, name: str) -> None:
        super().__init__(f"unknown projection {name!r}; known: {', '.join(PROJECTIONS)}")


def projection(name: str) -> Projection:
    try:
        return PROJECTIONS[name]
    except KeyError:
        raise UnknownProjection(name) from None


def schema_name(name: str, version: int) -> str:
    """Blue/green storage: version N of projection P lives in schema proj_<P>_v<N>."""
    return f"proj_{name}_v{version}"
