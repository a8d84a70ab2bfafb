"""bugdet: weak-supervision visual bug detection for game QA.

Pipeline stages live in sibling packages, one per stage, and data flows forward:
``ingest`` -> ``segment`` -> ``embed``/``cluster`` -> ``augment`` -> ``detect`` -> ``export``.
"""

__version__ = "0.1.0"
