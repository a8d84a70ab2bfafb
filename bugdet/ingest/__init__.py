"""The ingest stage: captures (videos, frame folders, capture sessions) into the project store."""
