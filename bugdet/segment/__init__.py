"""Stage 2: cut frames into candidate masks (automatic grid prompts, tester prompts, engine IDs)."""
