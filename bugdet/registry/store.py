"""The versioned model registry: immutable packages per model, one champion alias, a history.

Layout (the directory ``bugdet serve --models`` watches)::

    REGISTRY/<model>/versions/<model>-<version>/   model packages (``bugdet export`` format), never changed
    REGISTRY/<model>/champion.json                 the alias: which version is served
    REGISTRY/<model>/history.jsonl                 every promotion and rollback, appended
    REGISTRY/<model>/.lock                         serialises writers (nightly job, CLI)

Publishing a version never changes what is served; only :meth:`Registry.promote` and
:meth:`Registry.rollback` do, by atomically replacing the alias file after verifying every
checksum of the package it will name. A half-written or corrupt version therefore can never
become the champion, and the champion keeps serving while anything else fails.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import re
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from bugdet.errors import InputError
from service.model_package import ALIAS_FORMAT, ALIAS_NAME, VERSIONS_DIR, PackageError, has_alias, load_manifest, read_alias
HISTORY_NAME = "history.jsonl"
_SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class Version:
    """One stored package of a model."""

    model: str
    version: str
    path: Path
    created_at: str
    metrics: dict[str, Any]
    valid: bool
    problem: str = ""


@dataclass(frozen=True)
class Champion:
    model: str
    version: str
    path: Path
    promoted_at: str
    reason: str


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def _write_atomic(path: Path, text: str) -> None:
    """Write beside ``path``, flush, then rename over it: readers see the old or the new file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Registry:
    def __init__(self, root: Path):
        self.root = Path(root)

    # -- layout ------------------------------------------------------------------------------
    def model_dir(self, model: str) -> Path:
        if not _SAFE.match(model):
            raise InputError(f"registry: model name {model!r} may only use letters, digits, '.', '_' and '-'")
        return self.root / model

    def versions_dir(self, model: str) -> Path:
        return self.model_dir(model) / VERSIONS_DIR

    def package_dir(self, model: str, version: str) -> Path:
        return self.versions_dir(model) / f"{model}-{version}"

    def models(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and (p / VERSIONS_DIR).is_dir())

    # -- reading -----------------------------------------------------------------------------
    def versions(self, model: str) -> list[Version]:
        """Every stored version, oldest first; ``valid`` says whether its manifest reads (not its checksums)."""
        out = []
        directory = self.versions_dir(model)
        for path in sorted(directory.iterdir()) if directory.is_dir() else []:
            if not path.is_dir() or path.name.startswith("."):
                continue
            try:
                m = load_manifest(path, verify=False)
            except PackageError as exc:
                out.append(Version(model, path.name.removeprefix(f"{model}-"), path, "", {}, False, str(exc)))
                continue
            out.append(Version(model, m.version, path, m.created_at, dict(m.raw.get("metrics") or {}), True))
        return sorted(out, key=lambda v: (v.created_at, v.version))

    def champion(self, model: str) -> Champion | None:
        directory = self.model_dir(model)
        if not has_alias(directory):
            return None
        try:
            package = read_alias(directory)
            data = json.loads((directory / ALIAS_NAME).read_text(encoding="utf-8"))
        except (PackageError, OSError, json.JSONDecodeError) as exc:
            raise InputError(f"registry: {directory / ALIAS_NAME}: {exc}") from None
        return Champion(model, str(data.get("version", "")), package, str(data.get("promoted_at", "")), str(data.get("reason", "")))

    def history(self, model: str) -> list[dict[str, Any]]:
        path = self.model_dir(model) / HISTORY_NAME
        if not path.is_file():
            return []
        events = []
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                events.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line cut short by a crash; every complete event is still read
        return events

    # -- switching the champion --------------------------------------------------------------
    @contextmanager
    def _locked(self, model: str) -> Iterator[None]:
        directory = self.model_dir(model)
        directory.mkdir(parents=True, exist_ok=True)
        with open(directory / ".lock", "a+") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def promote(self, model: str, version: str, reason: str = "", details: dict[str, Any] | None = None,
                action: str = "promote") -> Champion:
        """Make ``version`` the champion. Idempotent: promoting the current champion changes nothing.

        Every checksum of the package is verified first (what the service will do), so a corrupt
        version raises :class:`InputError` and the current champion stays.
        """
        package = self.package_dir(model, version)
        with self._locked(model):
            try:
                manifest = load_manifest(package, verify=True)
            except PackageError as exc:
                raise InputError(f"registry: cannot promote {model} {version}: {exc}") from None
            if manifest.name != model:
                raise InputError(f"registry: {package} holds model {manifest.name!r}, not {model!r}")
            try:
                current = self.champion(model)
            except InputError:
                current = None  # a damaged alias is repaired by the promotion, not an obstacle to it
            if current is not None and current.path == package:
                return current
            promoted_at = _now()
            alias = {"format": ALIAS_FORMAT, "model": model, "version": version,
                     "package": f"{VERSIONS_DIR}/{package.name}", "promoted_at": promoted_at, "reason": reason}
            _write_atomic(self.model_dir(model) / ALIAS_NAME, json.dumps(alias, indent=1) + "\n")
            event = {"at": promoted_at, "action": action, "model": model, "version": version,
                     "previous": current.version if current else None, "reason": reason, **(details or {})}
            with open(self.model_dir(model) / HISTORY_NAME, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(event, sort_keys=True, default=str) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            return Champion(model, version, package, promoted_at, reason)

    def rollback(self, model: str, version: str | None = None, reason: str = "") -> Champion:
        """Switch the champion back: to ``version``, or to the champion before the current one."""
        current = self.champion(model)
        if version is None:
            if current is None:
                raise InputError(f"registry: {model} has no champion to roll back from")
            earlier = [e for e in self.history(model) if e.get("version") == current.version and e.get("previous")]
            if not earlier:
                raise InputError(f"registry: no champion before {model} {current.version} is recorded")
            version = str(earlier[-1]["previous"])
        return self.promote(model, version, reason or "rollback", action="rollback")
