"""A circuit breaker per delivery channel, as a pure decider.

It stops the saga worker from hammering a provider that is down and lets exactly one
probe through after a cool-down. The worker asks `allows(state, now)` before an attempt.
"""
