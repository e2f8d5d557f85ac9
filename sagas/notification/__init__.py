"""The notification saga: one saga per notification, written as a pure decider.

`decide(state, command)` turns commands into saga events, `evolve(state, event)` folds
them, and `react(state, event)` says what the worker must do next (commands and timers).
Time, ids and jitter always arrive on the inputs; nothing here reads a clock.
"""
