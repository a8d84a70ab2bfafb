"""The mask bank: the kept, balanced masks the augmentation stage pastes onto frames.

``bank/bank.json`` lists every bank mask with its cluster and sampling weight (weights sum to 1
and give every cluster the same total share). It is written atomically at the end of a clustering
run, so a reader sees either the previous bank or the new one, never half of one.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bugdet.errors import InputError
from bugdet.project import Project
from bugdet.segment.masks import MaskRecord, iter_masks

BANK_FILE = Path("bank") / "bank.json"
BANK_FORMAT = "bugdet.mask-bank/1"


@dataclass
class BankEntry:
    mask: MaskRecord
    cluster: int
    weight: float


def bank_path(project: Project) -> Path:
    return project.root / BANK_FILE


def write_bank(project: Project, document: dict[str, Any]) -> Path:
    path = bank_path(project)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"format": BANK_FORMAT, "written_at": time.time(), **document}, indent=1), encoding="utf-8")
    os.replace(tmp, path)
    return path


def read_bank(project: Project) -> dict[str, Any]:
    path = bank_path(project)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path}: no mask bank yet (run `bugdet cluster` first)") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: unreadable mask bank ({exc})") from None
    if data.get("format") != BANK_FORMAT:
        raise InputError(f"{path}: not a {BANK_FORMAT} file")
    return data


def load_bank_entries(project: Project) -> list[BankEntry]:
    """Bank masks with their cluster and sampling weight, in bank order."""
    data = read_bank(project)
    listed = {int(m["mask_id"]): m for m in data["masks"]}
    conn = project.connect()
    try:
        records = {r.id: r for r in iter_masks(conn) if r.id in listed}
    finally:
        conn.close()
    missing = [i for i in listed if i not in records]
    if missing:
        raise InputError(f"mask bank lists {len(missing)} mask(s) no longer in the project (re-run `bugdet cluster`)")
    return [BankEntry(records[i], int(m["cluster"]), float(m["weight"])) for i, m in listed.items()]


def load_mask_bank(project: Project) -> list[MaskRecord]:
    """The bank's masks (cluster and weight are also in each record's ``meta``)."""
    out = []
    for entry in load_bank_entries(project):
        entry.mask.meta = {**entry.mask.meta, "bank_cluster": entry.cluster, "bank_weight": entry.weight}
        out.append(entry.mask)
    return out
