"""Stage 1: ingest captures (videos, frame folders, capture sessions) into the project store."""
