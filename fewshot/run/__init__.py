"""Run folders: configuration, training driver, checkpoints and metrics."""
