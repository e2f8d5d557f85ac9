"""The `nexus` command (`main`): local stack control, operator tools, demo traffic, saga audit."""
