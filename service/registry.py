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
        self.reloads = 0
        self.refusals = 0

    # -- lookups (lock-free: dict reads of whole references are atomic in CPython)
    def models(self) -> list[LoadedModel]:
        return list(self._models.values())

    def get(self, name: str = "", version: str = "") -> LoadedModel:
        models = self._models
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
                served = self._models.get(name)
                if served is not None and served.manifest.directory == manifest.directory:
                    continue
                self._try_load(name, manifest, report)
            for name, manifests in candidates.items():
                if name in pinned:
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

    def _collect(self, report: ScanReport) -> tuple[dict[str, PackageManifest], dict[str, list[PackageManifest]]]:
        """Champions named by aliases (by model name) and the plain packages (by model name)."""
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
            if self._refused.get(package) == fingerprint:
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
