"""Running the platform on this machine: local Kafka and PostgreSQL, detached and child
processes, supervision, and the `nexus up` service list. Only the CLI, tests and bench use it."""
