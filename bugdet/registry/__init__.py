"""The versioned model registry the service watches: see :mod:`bugdet.registry.store`."""

from bugdet.registry.store import Champion, Registry, Version

__all__ = ["Champion", "Registry", "Version"]
