"""Delivery adapters for notifications: the `Notifier` port, its apprise/httpx adapter and the
SSRF guard for outbound HTTP targets."""
