"""Which model package is served under each name, and hot reload.

The models directory is scanned periodically (and on the ReloadModels RPC). For every model name
the newest valid package wins (manifest ``created_at``, then ``version``). A newer package is
verified (sha256 of every file), loaded and warmed *before* it replaces the served one, and the
swap is a single reference assignment: requests already batched keep running on the old session,
new ones get the new. A package that fails any step is refused and remembered by a fingerprint of
its files (names, sizes, mtimes), so it is retried only once it changes, e.g. when a slow copy
finishes; meanwhile the old model keeps serving.

A directory holding a champion alias (``champion.json``, written by ``bugdet.registry``) is a
versioned registry model: exactly the package its alias names is served, whatever newer or older
versions sit beside it, so promoting a challenger or rolling back is one atomic alias switch that
the next scan follows. The models directory itself may be such a model directory, or hold several.

Models can also be controlled explicitly (KServe's RepositoryModelLoad / Unload): an unloaded name
is skipped by every scan until it is loaded again.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from service.echo import echo
from service.model_package import (
    ALIAS_NAME, PackageError, PackageManifest, has_alias, is_unpromoted_registry_model, load_manifest, read_alias,
)
from service.runtime import LoadedModel, load_model

log = logging.getLogger("bugdet.service")


class ModelNotFound(LookupError):
    """The request names a model (or version) that is not served."""


class NoModelReady(LookupError):
    """No model is loaded yet (a server starting or restarting): worth retrying, unlike
    :class:`ModelNotFound`, so it maps to UNAVAILABLE."""


@dataclass(frozen=True)
class IndexEntry:
    """One package version in the models directory and whether it is served (RepositoryIndex)."""

    name: str
    version: str
    state: str  # READY or UNAVAILABLE, Triton's names
    reason: str = ""


@dataclass
class ScanReport:
    loaded: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    serving: list[str] = field(default_factory=list)


def _fingerprint(directory: Path) -> tuple:
    try:
        return tuple(sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in directory.iterdir()))
    except OSError:
        return ()


class ModelRegistry:
    def __init__(self, models_dir: Path, device: str = "auto", warm_batches: tuple[int, ...] = (1,),
                 on_change: Callable[[], None] | None = None, intra_op_threads: int = 0):
        self.models_dir = Path(models_dir)
        self.device = device
        self.warm_batches = warm_batches
        self.intra_op_threads = intra_op_threads
        self._models: dict[str, LoadedModel] = {}
        self._refused: dict[Path, tuple] = {}
        self._scan_lock = threading.Lock()
        self._on_change = on_change
        self._unloaded: set[str] = set()  # names explicitly unloaded: scans skip them until loaded again
        self.reloads = 0
        self.refusals = 0

    # -- lookups (lock-free: dict reads of whole references are atomic in CPython)
    def models(self) -> list[LoadedModel]:
        return list(self._models.values())

    def get(self, name: str = "", version: str = "") -> LoadedModel:
        models = self._models
        if name and name not in models and name in self._unloaded:
            raise ModelNotFound(f"model {echo(name)} is unloaded (load it to serve it again)")
        if not models:  # whatever was asked for may well be served once loading finishes
            raise NoModelReady("no model is loaded yet (the server is starting or its packages are still loading); retry shortly")
        if not name:
            if len(models) == 1:
                model = next(iter(models.values()))
            else:
                raise ModelNotFound(f"several models are served ({', '.join(sorted(models))}); name one")
        else:
            model = models.get(name)
            if model is None:
                raise ModelNotFound(f"unknown model {echo(name)} (served: {', '.join(sorted(models))})")
        if version and version != model.version:
            raise ModelNotFound(f"model {model.name!r} version {echo(version)} is not served (serving {model.version!r})")
        return model

    # -- reload
    def scan(self) -> ScanReport:
        """Load every package newer than what is served, and every switched champion alias;
        never unloads a working model."""
        with self._scan_lock:
            report = ScanReport()
            pinned, candidates = self._collect(report)
            for name, manifest in pinned.items():
                if name in self._unloaded:
                    continue
                served = self._models.get(name)
                if served is not None and served.manifest.directory == manifest.directory:
                    continue
                self._try_load(name, manifest, report)
            for name, manifests in candidates.items():
                if name in pinned or name in self._unloaded:
                    continue  # a registry model serves its champion, never a loose newer package
                served = self._models.get(name)
                for manifest in sorted(manifests, key=_newness, reverse=True):
                    if served is not None and _newness(manifest) <= _newness(served.manifest):
                        break
                    if self._try_load(name, manifest, report):
                        break
            report.serving = sorted(m.key for m in self._models.values())
        if report.loaded and self._on_change:
            self._on_change()
        return report

    # -- explicit model control (KServe RepositoryModelLoad / Unload, RepositoryIndex)
    def unload(self, name: str) -> None:
        """Stop serving ``name`` until :meth:`load`; later scans leave it unloaded.

        Batches already running finish on the model; new requests get NOT_FOUND."""
        with self._scan_lock:
            if name not in self._models and name not in self._unloaded and name not in self._names_on_disk():
                raise ModelNotFound(f"unknown model {echo(name)}: nothing to unload")
            self._unloaded.add(name)
            self._models = {key: model for key, model in self._models.items() if key != name}
        log.info("unloaded %s on request", name)
        if self._on_change:
            self._on_change()

    def load(self, name: str) -> LoadedModel:
        """(Re)load ``name`` from the models directory, retrying packages refused before."""
        with self._scan_lock:
            pinned, candidates = self._collect(ScanReport(), include_refused=True)
            packages = ([pinned[name].directory] if name in pinned else []) + [m.directory for m in candidates.get(name, [])]
            if not packages:
                raise ModelNotFound(f"no package for model {echo(name)} in {self.models_dir}")
            self._unloaded.discard(name)
            for directory in packages:
                self._refused.pop(directory, None)
        report = self.scan()
        model = self._models.get(name)
        if model is None:
            reasons = "; ".join(report.refused) or "no loadable package"
            raise ModelNotFound(f"model {echo(name)} could not be loaded: {reasons[:400]}")
        if self._on_change and not report.loaded:
            self._on_change()  # it was already loaded; health stays consistent either way
        return model

    def index(self) -> list[IndexEntry]:
        """Every model version in the directory (a registry model: its champion) and its state."""
        with self._scan_lock:
            pinned, candidates = self._collect(ScanReport())
        served_now = dict(self._models)
        entries: list[IndexEntry] = []
        for name in sorted(set(pinned) | set(candidates) | set(served_now) | self._unloaded):
            served = served_now.get(name)
            manifests = [pinned[name]] if name in pinned else sorted(candidates.get(name, []), key=_newness, reverse=True)
            if served is not None and all(m.directory != served.manifest.directory for m in manifests):
                entries.append(IndexEntry(name, served.version, "READY"))  # served from a package since removed
            for manifest in manifests:
                if served is not None and manifest.directory == served.manifest.directory:
                    entries.append(IndexEntry(name, manifest.version, "READY"))
                elif name in self._unloaded:
                    entries.append(IndexEntry(name, manifest.version, "UNAVAILABLE", "unloaded"))
                elif served is not None:
                    entries.append(IndexEntry(name, manifest.version, "UNAVAILABLE", f"version {served.version} is served"))
                else:
                    entries.append(IndexEntry(name, manifest.version, "UNAVAILABLE", "not loaded"))
        return entries

    def _names_on_disk(self) -> set[str]:
        pinned, candidates = self._collect(ScanReport())
        return set(pinned) | set(candidates)

    def _collect(self, report: ScanReport, include_refused: bool = False) -> tuple[dict[str, PackageManifest], dict[str, list[PackageManifest]]]:
        """Champions named by aliases (by model name) and the plain packages (by model name);
        packages refused before and unchanged since are left out unless ``include_refused``."""
        pinned: dict[str, PackageManifest] = {}
        candidates: dict[str, list[PackageManifest]] = {}
        if has_alias(self.models_dir):
            directories = [self.models_dir]
        elif self.models_dir.is_dir():
            directories = sorted(p for p in self.models_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
        else:
            directories = []
        for directory in directories:
            if is_unpromoted_registry_model(directory):
                continue
            aliased = has_alias(directory)
            try:
                package = read_alias(directory) if aliased else directory
            except PackageError as exc:
                alias, alias_fingerprint = directory / ALIAS_NAME, _fingerprint(directory)
                if self._refused.get(alias) != alias_fingerprint:
                    self._refuse(alias, alias_fingerprint, str(exc), report)
                continue
            fingerprint = _fingerprint(package)
            if self._refused.get(package) == fingerprint and not include_refused:
                continue
            try:
                manifest = load_manifest(package, verify=False)
            except PackageError as exc:
                self._refuse(package, fingerprint, str(exc), report)
                continue
            if aliased:
                pinned[manifest.name] = manifest
            else:
                candidates.setdefault(manifest.name, []).append(manifest)
        return pinned, candidates

    def _try_load(self, name: str, manifest: PackageManifest, report: ScanReport) -> bool:
        """Verify, load and warm ``manifest``'s package, then swap it in; False if refused."""
        fingerprint = _fingerprint(manifest.directory)
        try:
            verified = load_manifest(manifest.directory, verify=True)
            model = load_model(verified, self.device, self.warm_batches, self.intra_op_threads)
        except PackageError as exc:
            self._refuse(manifest.directory, fingerprint, str(exc), report)
            return False
        self._models = {**self._models, name: model}
        self._refused.pop(manifest.directory, None)
        self.reloads += 1
        report.loaded.append(model.key)
        log.info("serving %s from %s (%s)", model.key, manifest.directory, model.provider)
        return True

    def _refuse(self, directory: Path, fingerprint: tuple, reason: str, report: ScanReport) -> None:
        self._refused[directory] = fingerprint
        self.refusals += 1
        report.refused.append(reason)
        log.warning("refused package: %s", reason)


def _newness(manifest: PackageManifest) -> tuple[str, str, str]:
    return (manifest.created_at, manifest.version, manifest.directory.name)
