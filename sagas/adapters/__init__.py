"""The notifier's adapters at the edge: the `Notifier` port and its apprise/httpx adapter, the
SSRF guard for outbound HTTP targets, and the PostgreSQL delivery ledger, recipients and index."""
