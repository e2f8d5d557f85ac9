"""Anomaly detection on the analytics rollups (issue 3).

`detector` decides spikes and drops of a type's per-minute rate (pure), `events` turns one
into an `analytics.anomaly_detected` event, and `projection` keeps those in the `anomalies`
read model. `streams.anomaly_watch` is the adapter that reads the rollups and publishes;
the analytics worker (`streams.analytics`) runs it and keeps the read model live.
"""
