"""The analytics worker: a Faust app that folds tracked events into the rollups read model,
watches them for anomalies and keeps the anomalies read model from the events it publishes.

Faust consumes and batches; exactness comes from the sinks, not from Faust: each batch is
applied in one PostgreSQL transaction with its per-partition checkpoints, and messages
below a checkpoint are skipped, so a redelivered message is never counted twice.
"""
