"""How a Nexus process runs: `serve` (logging, topics, health, signals, stop), the health
endpoint, and running a Faust app as such a process."""
