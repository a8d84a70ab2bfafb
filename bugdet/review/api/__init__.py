"""HTTP API of the review app, one module per view; each exposes ``routes``."""
