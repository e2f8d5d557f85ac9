"""The user aggregate: registration, profile, notification preferences, deactivation."""
