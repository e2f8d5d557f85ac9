"""aggregates package."""
