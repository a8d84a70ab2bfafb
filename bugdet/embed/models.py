"""Resolve the config's model + weights to a :class:`ModelSpec`, and build the open_clip model.

Resolution happens without loading anything, so later stages (clustering, replay) can find the
embeddings a model produced by its :attr:`ModelSpec.key` without paying for a model load. The key
names the architecture and the *identity of the weights* (a tag, or the content hash of a file), so
embeddings and ONNX exports from different weights never mix.

Weights come from exactly one place, chosen explicitly: a pretrained tag, a checkpoint file,
``local-dir:DIR``, or ``none``. An unreachable download is a :class:`BugdetError` telling the user
their options, raised within seconds (the weights host is probed once, not retried for a minute);
it never falls back to random weights on its own.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bugdet.embed.config import EmbedConfig
from bugdet.errors import ConfigError, InputError

LOCAL_DIR_PREFIX = "local-dir:"
NO_WEIGHTS = {"none", "random", ""}
WEIGHT_FILENAMES = (
    "open_clip_model.safetensors",
    "open_clip_pytorch_model.bin",
    "open_clip_model.bin",
    "pytorch_model.bin",
    "model.safetensors",
)
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors", ".ckpt")


@dataclass(frozen=True)
class ModelSpec:
    """What to build: architecture, where its weights come from, and a stable identity."""

    arch: str                 # open_clip architecture name ('' for local-dir: it comes from the config file)
    source: str               # 'tag' | 'file' | 'local-dir' | 'none'
    weights: str              # the tag, the file path, the directory, or 'none'
    key: str                  # filesystem-safe identity of architecture + weights
    init_seed: int = 0

    @property
    def pretrained(self) -> bool:
        return self.source != "none"

    @property
    def label(self) -> str:
        """How the model is named to people; unpretrained models say so."""
        if self.source == "none":
            return f"{self.arch} (unpretrained, random init seed {self.init_seed})"
        return f"{self.arch or 'local-dir'} ({self.source}: {self.weights})"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")[:48] or "x"


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _key(arch: str, source: str, identity: str) -> str:
    digest = hashlib.sha256(f"{arch}|{source}|{identity}".encode()).hexdigest()[:10]
    return f"{_slug(arch or 'local-dir')}-{_slug(source)}-{digest}"


def _known_archs() -> list[str]:
    import open_clip

    return list(open_clip.list_models())


def find_local_dir_weights(directory: Path) -> Path | None:
    for name in WEIGHT_FILENAMES:
        if (directory / name).is_file():
            return directory / name
    return None


def resolve_model_spec(cfg: EmbedConfig) -> ModelSpec:
    """Validate model + weights and compute their identity; raises a one-line error for bad input."""
    pretrained = cfg.pretrained.strip()
    if pretrained.startswith(LOCAL_DIR_PREFIX):
        directory = Path(pretrained[len(LOCAL_DIR_PREFIX):]).expanduser()
        config_file = directory / "open_clip_config.json"
        if not directory.is_dir():
            raise InputError(f"filter.embed.pretrained: {directory}: no such directory")
        if not config_file.is_file():
            raise InputError(f"filter.embed.pretrained: {config_file}: missing (local-dir needs open_clip_config.json)")
        weights = find_local_dir_weights(directory)
        if weights is None:
            raise InputError(
                f"filter.embed.pretrained: {directory} has no weights file (expected one of {', '.join(WEIGHT_FILENAMES)})"
            )
        arch = _local_dir_arch(config_file, fallback=cfg.model)
        identity = hashlib.sha256(config_file.read_bytes()).hexdigest() + _file_sha256(weights)
        return ModelSpec(arch=arch, source="local-dir", weights=str(directory), key=_key(arch, "local-dir", identity))

    arch = cfg.model.strip()
    known = _known_archs()
    if arch not in known:
        close = [m for m in known if arch.lower().replace("/", "-") in m.lower()][:5]
        hint = f" (did you mean {', '.join(close)}?)" if close else " (see open_clip.list_models())"
        raise ConfigError(f"filter.embed.model: unknown open_clip model {arch!r}{hint}")

    if pretrained.lower() in NO_WEIGHTS:
        return ModelSpec(arch=arch, source="none", weights="none",
                         key=_key(arch, "none", f"seed{cfg.init_seed}"), init_seed=cfg.init_seed)

    looks_like_file = "/" in pretrained or "\\" in pretrained or pretrained.endswith(CHECKPOINT_SUFFIXES)
    if looks_like_file:
        path = Path(pretrained).expanduser()
        if not path.is_file():
            raise InputError(f"filter.embed.pretrained: checkpoint file {path} not found")
        return ModelSpec(arch=arch, source="file", weights=str(path), key=_key(arch, "file", _file_sha256(path)))

    import open_clip

    tags = open_clip.list_pretrained_tags_by_model(arch)
    if pretrained not in tags:
        available = ", ".join(tags) if tags else "none published"
        raise ConfigError(
            f"filter.embed.pretrained: {pretrained!r} is not a pretrained tag of {arch} (tags: {available}); "
            "use a tag, a checkpoint file, local-dir:DIR or none"
        )
    return ModelSpec(arch=arch, source="tag", weights=pretrained, key=_key(arch, "tag", pretrained))


def _local_dir_arch(config_file: Path, fallback: str) -> str:
    try:
        data: dict[str, Any] = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"{config_file}: not readable JSON ({exc})") from None
    if "model_cfg" not in data:
        raise InputError(f"{config_file}: has no model_cfg (not an open_clip config)")
    name = data.get("model_name") or data.get("arch")
    return str(name) if name else f"local-dir:{fallback}"


#: Seconds to wait for a weights host before calling it unreachable (a hub client offline
#: otherwise retries for about a minute before it fails).
REACH_TIMEOUT_S = 3.0
OFFLINE_FIX = ("put a checkpoint file or local-dir:DIR in filter.embed.pretrained, or choose "
               "pretrained: none for an unpretrained model")


def _tag_weights_cached(cfg: dict[str, Any]) -> bool:
    """Whether open_clip would find the tag's weights without the network."""
    hub = cfg.get("hf_hub", "")
    if hub:
        try:
            from huggingface_hub import try_to_load_from_cache
        except ImportError:
            return False
        repo, filename = hub.rstrip("/").rsplit("/", 1) if not hub.endswith("/") else (hub.rstrip("/"), "")
        names = [filename] if filename else ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]
        return any(isinstance(try_to_load_from_cache(repo, name), str) for name in names)
    url = cfg.get("url", "")
    return bool(url) and (Path.home() / ".cache" / "clip" / Path(url).name).is_file()


def _host_reachable(host: str, port: int = 443, timeout: float = REACH_TIMEOUT_S) -> bool:
    """TCP connect to ``host``:``port`` within ``timeout`` seconds, DNS included (run in a thread, so a
    resolver that hangs cannot hold the caller longer than the timeout)."""
    import socket
    import threading

    result: list[bool] = []

    def probe() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            result.append(True)
        except OSError:
            result.append(False)

    worker = threading.Thread(target=probe, daemon=True)
    worker.start()
    worker.join(timeout)
    return bool(result and result[0])


def require_tag_weights_reachable(spec: ModelSpec) -> None:
    """Fail at once, with the fix, when a pretrained tag's weights are neither cached nor
    downloadable; never fall back to random weights on the user's behalf, never hang retrying."""
    import os
    from urllib.parse import urlparse

    from open_clip.pretrained import get_pretrained_cfg

    cfg = get_pretrained_cfg(spec.arch, spec.weights) or {}
    if _tag_weights_cached(cfg):
        return
    offline = any(os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on")
                  for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))
    if cfg.get("url") and not cfg.get("hf_hub"):
        where = urlparse(cfg["url"])
    else:
        from huggingface_hub import constants

        where = urlparse(constants.ENDPOINT)  # HF_ENDPOINT when set (a mirror), else huggingface.co
    host = where.hostname or "huggingface.co"
    if offline or not _host_reachable(host, where.port or 443):
        why = "offline mode is set" if offline else f"{host} is unreachable"
        raise ConfigError(f"cannot load pretrained weights {spec.arch}/{spec.weights} (not cached, and {why}): {OFFLINE_FIX}")


@functools.lru_cache(maxsize=2)
def build_open_clip_model(spec: ModelSpec, device: str = "cpu") -> tuple[Any, Any]:
    """Build the open_clip model (eval mode) and its tokenizer for ``spec``.

    Random init is seeded (``spec.init_seed``) inside a forked RNG so an unpretrained model is the
    same model every time, which keeps its ONNX export cache and stored embeddings consistent.
    The last two models built are kept (specs are immutable and name the weights' content), so a
    long-lived process (review app, nightly job, a CLI session in tests) that embeds, then
    refines with prompts, then labels frames loads the weights once. Callers must not modify them.
    """
    import torch
    import open_clip

    if spec.source == "tag":
        require_tag_weights_reachable(spec)
    if spec.source == "local-dir":
        name, pretrained = LOCAL_DIR_PREFIX + spec.weights, None
    else:
        name, pretrained = spec.arch, (None if spec.source == "none" else spec.weights)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(spec.init_seed)
            model = open_clip.create_model(name, pretrained=pretrained, device=device)
        tokenizer = open_clip.get_tokenizer(name)
    except (RuntimeError, OSError, ValueError) as exc:
        if spec.source == "tag":
            raise ConfigError(
                f"cannot load pretrained weights {spec.arch}/{spec.weights} (offline or not cached?): {OFFLINE_FIX}"
            ) from None
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"cannot load {spec.label}: {first_line[:300]}") from None
    model.eval()
    return model, tokenizer
