"""Benchmarks of the Nexus platform, each figure measured beside a reference in the same run.

`python -m bench` (or `make bench`) starts a private Kafka and PostgreSQL, runs every
benchmark against real `nexus run` processes and writes bench/results/latest.json.
`python -m bench NAME ...` runs only the named benchmarks. Benchmarks are not tests: a
missed target is reported, never raised.
"""
