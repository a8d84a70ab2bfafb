"""Resolve the config's model + weights to a :class:`ModelSpec`, and build the open_clip model.

Resolution happens without loading anything, so later stages (clustering, replay) can find the
embeddings a model produced by its :attr:`ModelSpec.key` without paying for a model load. The key
names the architecture and the *identity of the weights* (a tag, or the content hash of a file), so
embeddings and ONNX exports from different weights never mix.

Weights come from exactly one place, chosen explicitly: a pretrained tag, a checkpoint file,
``local-dir:DIR``, or ``none``. An unreachable download is a :class:`BugdetError` telling the user
their options; it never falls back to random weights on its own.
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
                f"cannot load pretrained weights {spec.arch}/{spec.weights} (offline or not cached?): "
                "put a checkpoint file or local-dir:DIR in filter.embed.pretrained, or choose "
                "pretrained: none for an unpretrained model"
            ) from None
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"cannot load {spec.label}: {first_line[:300]}") from None
    model.eval()
    return model, tokenizer
