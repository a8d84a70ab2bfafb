"""The model package format: the only contract between ``bugdet export`` and the service.

A package is a directory::

    <name>-<version>/
        model.onnx        input ``images`` uint8 [N, H, W, 3] RGB at the package's input size;
                          outputs ``scores`` float32 [N, T] and ``heatmaps`` float32 [N, T, h, w]
        manifest.json     what is below, including the sha256 of every other file

The exporter writes it into a hidden temp directory next to its final place and renames it, so
a package directory under its final name is always complete. The service still verifies every
file's sha256 before loading, because packages are also copied between machines by hand (rsync,
scp) and a half-copied one must be refused rather than served.

This module is imported by both sides (the exporter writes with :func:`file_entry` and
:data:`MANIFEST_NAME`; the service reads with :func:`load_manifest`), so it must stay free of
torch and of everything else in ``bugdet``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MANIFEST_NAME = "manifest.json"
MODEL_FILE = "model.onnx"
FORMAT_NAME = "bugdet-model-package"
FORMAT_VERSION = 1


class PackageError(Exception):
    """A package directory is incomplete, corrupt or of an unknown format."""


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def file_entry(path: Path) -> dict[str, Any]:
    """The manifest's record of one file: its checksum and size."""
    return {"sha256": sha256_file(path), "bytes": path.stat().st_size}


@dataclass(frozen=True)
class InputSpec:
    """What the graph's input expects; the service resizes frames to (height, width)."""

    name: str
    height: int
    width: int
    channels: int
    dtype: str
    layout: str
    color: str


@dataclass(frozen=True)
class PackageManifest:
    """A validated manifest plus the directory it was read from."""

    directory: Path
    name: str
    version: str
    created_at: str
    bug_types: tuple[str, ...]
    thresholds: dict[str, float]
    input: InputSpec
    heatmap_size: tuple[int, int]
    raw: dict[str, Any]

    @property
    def model_path(self) -> Path:
        return self.directory / MODEL_FILE


def _require(data: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if key not in data:
        raise PackageError(f"{where}: manifest has no {key!r}")
    value = data[key]
    if not isinstance(value, kind):
        raise PackageError(f"{where}: manifest {key!r} has the wrong type ({type(value).__name__})")
    return value


def load_manifest(directory: Path, verify: bool = True) -> PackageManifest:
    """Read and validate ``directory``'s manifest; with ``verify`` check every file's sha256.

    Raises :class:`PackageError` with a message naming the first problem found.
    """
    directory = Path(directory)
    where = str(directory)
    path = directory / MANIFEST_NAME
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PackageError(f"{where}: no {MANIFEST_NAME} (not a package, or still being copied)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PackageError(f"{where}: unreadable {MANIFEST_NAME}: {exc}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT_NAME:
        raise PackageError(f"{where}: {MANIFEST_NAME} is not a {FORMAT_NAME} manifest")
    if data.get("format_version") != FORMAT_VERSION:
        raise PackageError(f"{where}: unsupported format_version {data.get('format_version')!r} (expected {FORMAT_VERSION})")

    files = _require(data, "files", dict, where)
    if MODEL_FILE not in files:
        raise PackageError(f"{where}: manifest lists no {MODEL_FILE}")
    if verify:
        for name, entry in files.items():
            file_path = directory / name
            if "/" in name or name.startswith(".") or name == MANIFEST_NAME:
                raise PackageError(f"{where}: manifest lists a forbidden file name {name!r}")
            if not file_path.is_file():
                raise PackageError(f"{where}: {name} is missing")
            if file_path.stat().st_size != entry.get("bytes"):
                raise PackageError(f"{where}: {name} has {file_path.stat().st_size} bytes, manifest says {entry.get('bytes')} (half-copied?)")
            if sha256_file(file_path) != entry.get("sha256"):
                raise PackageError(f"{where}: {name} fails its sha256 check (corrupt)")

    bug_types = tuple(_require(data, "bug_types", list, where))
    if not bug_types or not all(isinstance(b, str) and b for b in bug_types):
        raise PackageError(f"{where}: bug_types must be a non-empty list of names")
    thresholds_raw = _require(data, "thresholds", dict, where)
    missing = [b for b in bug_types if b not in thresholds_raw]
    if missing:
        raise PackageError(f"{where}: no threshold for {', '.join(missing)}")
    thresholds = {b: float(thresholds_raw[b]) for b in bug_types}
    spec = _require(data, "input", dict, where)
    try:
        input_spec = InputSpec(
            name=str(spec["name"]), height=int(spec["height"]), width=int(spec["width"]),
            channels=int(spec["channels"]), dtype=str(spec["dtype"]), layout=str(spec["layout"]),
            color=str(spec["color"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise PackageError(f"{where}: bad input spec: {exc}") from None
    if (input_spec.dtype, input_spec.layout, input_spec.color, input_spec.channels) != ("uint8", "NHWC", "RGB", 3):
        raise PackageError(f"{where}: unsupported input spec {spec} (expected uint8 NHWC RGB, 3 channels)")
    heatmap = _require(data, "heatmap_size", list, where)
    return PackageManifest(
        directory=directory,
        name=str(_require(data, "name", str, where)),
        version=str(_require(data, "version", str, where)),
        created_at=str(data.get("created_at", "")),
        bug_types=bug_types,
        thresholds=thresholds,
        input=input_spec,
        heatmap_size=(int(heatmap[0]), int(heatmap[1])),
        raw=data,
    )


# -- the champion alias of a versioned model registry ---------------------------------------------
#
# A registry model directory holds immutable packages under ``versions/`` and one small alias
# file naming the package to serve. Switching the champion is an atomic replace of that file, so
# the service sees either the old alias or the new one, and a rollback is the same switch backwards.
# ``bugdet.registry`` writes the alias; the service reads it here.

ALIAS_NAME = "champion.json"
ALIAS_FORMAT = "bugdet-champion-alias"
VERSIONS_DIR = "versions"


def has_alias(directory: Path) -> bool:
    return (Path(directory) / ALIAS_NAME).is_file()


def is_unpromoted_registry_model(directory: Path) -> bool:
    """A registry model directory with versions but no champion yet: nothing to serve, no error."""
    return (Path(directory) / VERSIONS_DIR).is_dir() and not has_alias(directory)


def read_alias(directory: Path) -> Path:
    """The package directory the alias in ``directory`` names.

    Raises :class:`PackageError` when the alias is unreadable, of another format, or points
    outside ``directory`` (an alias is always relative to the model directory that holds it).
    """
    directory = Path(directory)
    path = directory / ALIAS_NAME
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PackageError(f"{path}: unreadable champion alias: {exc}") from None
    if not isinstance(data, dict) or data.get("format") != ALIAS_FORMAT:
        raise PackageError(f"{path}: not a {ALIAS_FORMAT} file")
    package = data.get("package")
    if not isinstance(package, str) or not package or package.startswith("/") or ".." in Path(package).parts:
        raise PackageError(f"{path}: 'package' must be a path inside {directory}, got {package!r}")
    return directory / package
