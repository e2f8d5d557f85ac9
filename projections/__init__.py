"""Read models in PostgreSQL, projected from the event and outcome topics.

Each projection (users, workspaces, memberships, command_outcomes) has its own tables,
checkpoints and consumer, lives in versioned schemas behind public views, and can be
rebuilt from offset 0 and swapped live (`projections.replay`).
"""
