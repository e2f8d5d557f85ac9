"""What every process reads first: settings, logging, the one clock, and the platform's own
configuration files (the tracking plan and the workflows)."""
