"""Kafka plumbing shared by every process: client config, topics, dead letters, producers,
partition reads and the transactional read-process-write step. Imports nothing of the domain."""
