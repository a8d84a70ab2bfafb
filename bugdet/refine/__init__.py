"""Stage 2c: interactive filtering: text-prompt, cluster and mask decisions, persisted and replayable."""
