"""Which bug types a project's detector covers, when ``detect.bug_types`` is left empty.

A studio labels its own frames; asking it to also list the bug types in the config (and
defaulting to one type of our demo, FPPC) made detectors with a head for a bug nobody labeled.
Empty ``detect.bug_types`` therefore means "the bug types the project's labels hold", and when
there are no bug labels yet, the bug types its captures' ground truth holds.
"""

from __future__ import annotations

import sqlite3

from bugdet.errors import ConfigError
from bugdet.project import Project
from bugdet.store.frames import iter_frames
from bugdet.store.labels import labeled_bug_types


def ground_truth_bug_types(conn: sqlite3.Connection) -> list[str]:
    """Bug types present on at least one frame of the captures' ground truth (sorted)."""
    return sorted({t for f in iter_frames(conn) if f.ground_truth for t, v in f.ground_truth.items() if v.get("present")})


def effective_bug_types(project: Project) -> list[str]:
    """``detect.bug_types`` when set, else the labeled bug types, else the ground truth's."""
    configured = list(project.config.detect.bug_types)
    if configured:
        return configured
    conn = project.connect()
    try:
        found = labeled_bug_types(conn) or ground_truth_bug_types(conn)
    finally:
        conn.close()
    if not found:
        raise ConfigError("no bug types: label some bug frames (bugdet label import FILE) or set detect.bug_types "
                          "in bugdet.yaml")
    return found


def with_effective_bug_types(project: Project) -> Project:
    """The project with ``detect.bug_types`` filled in (a copy; the project file is not changed)."""
    types = effective_bug_types(project)
    if types == list(project.config.detect.bug_types):
        return project
    detect = project.config.detect.model_copy(update={"bug_types": types})
    return Project(root=project.root, config=project.config.model_copy(update={"detect": detect}))


def known_bug_types(project: Project, conn: sqlite3.Connection) -> list[str]:
    """Bug types a label may name: ``detect.bug_types`` when set; else every type bugdet has an
    objective for, plus those already labeled or in ground truth (a typo is still caught)."""
    configured = list(project.config.detect.bug_types)
    if configured:
        return configured
    from bugdet.augment.base import OBJECTIVES

    return sorted({*OBJECTIVES, *labeled_bug_types(conn), *ground_truth_bug_types(conn)})
