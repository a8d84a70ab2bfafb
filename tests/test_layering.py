"""The import rules the architecture rests on, checked on the source itself (docs/architecture.md).

Each rule keeps a part usable without the parts above it: the service runs without torch, a stage
runs without benchmark code, and segmentation/embedding run without Ray.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, at any depth (function-level imports included)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def offenders(folder: str, forbidden: str) -> list[str]:
    found = []
    for path in sorted((ROOT / folder).rglob("*.py")):
        bad = sorted(m for m in imported_modules(path) if m == forbidden or m.startswith(forbidden + "."))
        if bad:
            found.append(f"{path.relative_to(ROOT)}: {', '.join(bad)}")
    return found


def test_the_rule_checker_sees_function_level_imports(tmp_path) -> None:
    sample = tmp_path / "m.py"
    sample.write_text("def f():\n    from bugdet.scale.ray_segment import segment_on_ray\n", encoding="utf-8")
    assert "bugdet.scale.ray_segment" in imported_modules(sample)


def test_service_imports_nothing_from_bugdet() -> None:
    assert offenders("service", "bugdet") == []


@pytest.mark.parametrize("stage", ["ingest", "segment", "embed", "refine", "cluster", "weaklabel", "augment",
                                   "detect", "export", "registry", "review", "nightly", "playtest", "store"])
def test_no_stage_imports_benchmark_code(stage: str) -> None:
    assert offenders(f"bugdet/{stage}", "bugdet.bench") == []


@pytest.mark.parametrize("stage", ["segment", "embed"])
def test_segment_and_embed_do_not_import_the_scale_out_backends_built_on_them(stage: str) -> None:
    assert offenders(f"bugdet/{stage}", "bugdet.scale") == []


def test_augment_does_not_import_detect() -> None:
    """Data flows forward: objectives (exemplars included) feed the detector, never the reverse."""
    assert offenders("bugdet/augment", "bugdet.detect") == []
