"""The refine stage (interactive filtering): text-prompt, cluster and mask decisions, persisted and replayable."""
