"""Weak labels for frames: a few labeled exemplars propagated by kNN vote over frame embeddings."""
