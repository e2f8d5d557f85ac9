"""The notifier process: runs notification sagas, keeps their timers and sends deliveries.

`sagas.runtime.engine` applies commands to sagas in memory (deciders, circuit breakers,
rendering); `worker` is the Kafka plumbing around it: requests in, saga events out, one
transaction per step, state rebuilt from the saga topic when partitions are assigned.
"""
