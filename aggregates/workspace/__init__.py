"""The workspace aggregate: creation, renaming, membership, archiving."""
