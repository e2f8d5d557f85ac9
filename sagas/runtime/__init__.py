"""The notification sagas at run time, in memory and without I/O: the engine that applies
commands to a fixpoint, the per-channel circuits, the timer queue and rendered contents."""
