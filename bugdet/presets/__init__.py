"""Per-world settings as data: ``preset: <name>`` in ``bugdet.yaml`` (see :func:`bugdet.config.with_preset`).

Each ``<name>.yaml`` here is a partial project file for one engine or world, holding what was
measured to work there (objective parameters, whether labeled bug frames become exemplars), with
the measurement quoted beside each setting. A project's own keys always win over its preset's.
"""
