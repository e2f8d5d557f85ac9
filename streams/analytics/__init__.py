"""The analytics worker: a Faust app that folds tracked events into the rollups read model.

Faust consumes and batches; exactness comes from the sink, not from Faust: each batch is
applied in one PostgreSQL transaction with its per-partition checkpoints, and messages
below a checkpoint are skipped, so a redelivered message is never counted twice.
"""
