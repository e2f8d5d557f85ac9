"""sagas package."""
