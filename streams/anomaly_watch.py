"""The anomaly watch: reads recent minute rollups, runs the detector, publishes what is new.

The analytics worker calls `check(now)` every few seconds on its leader; a test can call it
directly. Each check reads the minute rollups of the last hour or so, summed over partitions,
in one query, and the anomalies reported in that span: those in the `anomalies` read model
(reported before a restart or by an earlier leader) and those this watch published itself
(the read model may not have them yet). Event ids are deterministic, so publishing an
anomaly twice, say after a crash between publishing and remembering it, gives one row.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any, Protocol

import psycopg
import structlog

from infra.config.settings import Settings
from projections.anomalies.detector import (
    DEFAULT_PARAMS,
    MINUTE,
    Anomaly,
    DetectorParams,
    MinuteCount,
    Reported,
    add_up,
    detect,
    minute_of,
)
from projections.anomalies.events import ANOMALY_DETECTED, anomaly_data, anomaly_event_id
from schemas.tracking_plan import TrackingPlan, load_plan
from streams.bus import Published

log = structlog.get_logger()
ACTOR = "anomaly-watch"

ROLLUPS_QUERY = """
SELECT event_type, bucket, sum(count)::bigint, jsonb_agg(top)
FROM public.rollups
WHERE granularity = 'minute' AND bucket >= %s AND bucket <= %s
GROUP BY event_type, bucket
ORDER BY event_type, bucket
"""
REPORTED_QUERY = """
SELECT event_type, direction, window_start
FROM public.anomalies
WHERE granularity = 'minute' AND window_start >= %s
"""


class EventPublisher(Protocol):
    """The part of `streams.bus.EventBus` the watch uses."""

    async def publish(
        self, type: str, aggregate_id: str, data: dict[str, Any], **envelope: Any
    ) -> Published: ...


class AnomalyWatch:
    """Checks the rollups for anomalies and publishes them; one check at a time.

    `plan` (by default read from `settings.analytics_file`) names each type's breakdown
    property. Database and Kafka errors propagate: the caller logs them and checks again.
    """

    def __init__(
        self,
        settings: Settings,
        bus: EventPublisher,
        *,
        params: DetectorParams = DEFAULT_PARAMS,
        plan: TrackingPlan | None = None,
    ) -> None:
        self.database_url = settings.resolved_database_url
        self.bus, self.params = bus, params
        self.plan = plan or load_plan(settings.analytics_file)
        self._published: dict[str, Reported] = {}  # by event id, pruned to the lookback

    async def check(self, now: datetime) -> list[Published]:
        """Publish the anomalies new at `now` (timezone-aware); returns what was published."""
        # Twice the baseline: an incident in the last baseline's span is followed from its
        # start, which needs a baseline of its own.
        since = minute_of(now) - (2 * self.params.baseline_minutes + 1) * MINUTE
        series, reported = await self._read(since, minute_of(now))
        self._published = {
            event_id: r for event_id, r in self._published.items() if r.window_start >= since
        }
        reported += self._published.values()
        anomalies = [
            anomaly
            for event_type, minutes in sorted(series.items())
            for anomaly in detect(event_type, minutes, now, reported, self.params)
        ]
        return [await self._publish(anomaly) for anomaly in anomalies]

    async def _read(
        self, since: datetime, until: datetime
    ) -> tuple[dict[str, list[MinuteCount]], list[Reported]]:
        async with await psycopg.AsyncConnection.connect(self.database_url) as conn:
            rollups = await (await conn.execute(ROLLUPS_QUERY, (since, until))).fetchall()
            reported = await (await conn.execute(REPORTED_QUERY, (since,))).fetchall()
        series: dict[str, list[MinuteCount]] = defaultdict(list)
        for event_type, bucket, count, tops in rollups:
            series[event_type].append(MinuteCount(bucket, int(count), add_up(tops)))
        return dict(series), [Reported(*row) for row in reported]

    async def _publish(self, anomaly: Anomaly) -> Published:
        event_id = anomaly_event_id(anomaly)
        data = anomaly_data(anomaly, self.plan.rollup(anomaly.event_type).top)
        published = await self.bus.publish(
            ANOMALY_DETECTED,
            anomaly.event_type,
            data,
            event_id=event_id,
            occurred_at=anomaly.detected_at,
            correlation_id=event_id,
            actor=ACTOR,
        )
        self._published[event_id] = Reported(
            anomaly.event_type, anomaly.direction, anomaly.window_start
        )
        log.info(
            "anomaly_detected",
            event_id=event_id,
            aggregate_id=anomaly.event_type,
            direction=anomaly.direction,
            window_start=anomaly.window_start.isoformat(),
            expected=anomaly.expected,
            observed=anomaly.observed,
            score=anomaly.score,
        )
        return published
