"""Schemas of the computed answers: analytics figures, a trace tree, published events.

Anomalies are rows of their read model (projections.anomalies.projection.ANOMALIES), in the
columns the dashboard query selects; the trace tree is projections.causal_chain.trace_json.
"""

from __future__ import annotations

from gateway.openapi.model import JsonSchema
from gateway.openapi.schema_kit import ID, POSITION, TIME, obj, row
from projections.analytics.rollups import GRANULARITIES
from projections.anomalies.projection import ANOMALIES
from projections.causal_chain import KINDS

# The columns projections.analytics_queries selects for the dashboard.
ANOMALY_COLUMNS = ("event_id", "event_type", "granularity", "window_start", "window_end",
                   "direction", "expected", "observed", "score", "breakdown_property",
                   "breakdown_value", "detected_at")  # fmt: skip
COUNT = {"type": "integer", "minimum": 0}
RANKED = {"type": "array", "items": obj({"value": {}, "count": COUNT})}
QUANTILES = obj({"p50": {"type": ["number", "null"]}, "p95": {"type": ["number", "null"]}})
PERCENTILES = {"type": "object", "additionalProperties": QUANTILES,
               "description": "by numeric property"}  # fmt: skip


def by_type(schema: JsonSchema) -> JsonSchema:
    return {"type": "object", "additionalProperties": schema, "description": "by event type"}


SPAN = {"from": TIME, "to": TIME, "granularity": {"enum": list(GRANULARITIES)}}
DASHBOARD = obj(
    {
        **SPAN,
        "total": COUNT,
        "active_users": COUNT,
        "totals": by_type(COUNT),
        "series": by_type({"type": "array", "items": obj({"bucket": TIME, "count": COUNT})}),
        "top_pages": RANKED,
        "top": by_type(RANKED),
        "percentiles": by_type(PERCENTILES),
        "anomalies": {"type": "array", "items": row(ANOMALIES, ANOMALY_COLUMNS)},
    }
)
WINDOW = obj(
    {
        "bucket": TIME,
        "count": COUNT,
        "late": COUNT,
        "users": COUNT,
        "percentiles": PERCENTILES,
        "top": RANKED,
    }
)
NODE_REF = {"$ref": "#/components/schemas/TraceNode"}
TRACE_NODE = obj(
    {
        "id": {"type": "string"},
        "kind": {"enum": list(KINDS)},
        "type": {"type": "string"},
        "at": TIME,
        "writer": {"type": "string"},
        "topic": {"type": "string"},
        "partition": {"type": "integer"},
        "offset": {"type": "integer"},
        "facts": {"type": "object"},
        "children": {"type": "array", "items": NODE_REF},
    }
)
REPORTS: dict[str, JsonSchema] = {
    "Dashboard": DASHBOARD,
    "EventSeries": obj(
        {"event_type": {"type": "string"}, **SPAN, "series": {"type": "array", "items": WINDOW}}
    ),  # fmt: skip
    "TraceNode": TRACE_NODE,
    "Trace": obj(
        {
            "id": {"type": "string"},
            "correlation_id": {"type": "string"},
            "records": COUNT,
            "tree": {"type": "array", "items": NODE_REF},
        }
    ),
    "EventsPublished": obj(
        {"events": {"type": "array", "items": obj({"event_id": ID, "position": POSITION})}}
    ),
}
