"""The detector: a backbone, one class-activation map per bug type, and smooth-max pooling.

One 1x1 convolution turns the backbone's feature map into a map per bug type (CAM). The frame's
score for a type is a log-sum-exp pool of its map: close to the max for a sharp pool, so one
small clipped region can flag a frame, yet every location gets gradient. The same map, squashed,
is the localisation a tester sees. Model configs are data (``model_configs/*.json``), so a new
variant is a file, not code. A config may name a screen region (``region.py``): the backbone then
sees only that part of the frame, at full resolution. A region with a backbone of its own adds a
second branch instead: the region's bug types (FPPC, on the viewmodel's corner at full resolution)
come from it, every other type from the main backbone on the whole frame, scaled to
``frame_size`` inside the graph so the whole-frame branch stays cheap. Callers see one model.

Contract with export and the service: ``forward(images)`` takes float RGB in [0, 1] at
``input_size`` and returns ``(scores [N, T], heatmaps [N, T, h, w])``, both in [0, 1].
"""

from __future__ import annotations

import copy
import json
import math
from importlib import resources
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from bugdet.detect.backbones import build_backbone
from bugdet.detect.region import ScreenRegion
from bugdet.errors import ConfigError, InputError

CHECKPOINT_FORMAT = "bugdet.detector/1"


def list_model_configs() -> list[str]:
    return sorted(p.name[:-5] for p in resources.files("bugdet.detect.model_configs").iterdir() if p.name.endswith(".json"))


def get_model_config(name: str) -> dict[str, Any]:
    """A named config from ``model_configs/``, or a JSON file path."""
    path = Path(name)
    if path.suffix == ".json" and path.is_file():
        return json.loads(path.read_text())
    res = resources.files("bugdet.detect.model_configs") / f"{name}.json"
    if not res.is_file():
        raise ConfigError(f"detect.model: unknown detector config {name!r} (known: auto, {', '.join(list_model_configs())})")
    return json.loads(res.read_text())


class BugDetector(nn.Module):
    def __init__(self, config: dict[str, Any], bug_types: Sequence[str]):
        super().__init__()
        if not bug_types:
            raise ConfigError("a detector needs at least one bug type")
        self.config = copy.deepcopy(config)
        self.bug_types = list(bug_types)
        self.input_size = tuple(int(v) for v in config["input_size"])
        self.pool_sharpness = float(config.get("pool_sharpness", 4.0))
        region_spec = config.get("region") or None
        self.region = ScreenRegion.from_config(region_spec)
        main_spec, self.frame_size = config["backbone"], None
        self.main_on_region, self.region_types, region_spec = False, [], region_spec or {}
        if self.region is not None and "backbone" not in region_spec:
            self.region.check_bug_types(self.bug_types)  # the whole detector looks at the region only
            self.main_on_region = True
        elif self.region is not None:
            # two branches: the region's bug types on its crop, every other type on the whole frame
            self.region_types = [t for t in self.bug_types if t in self.region.bug_types]
            if len(self.region_types) == len(self.bug_types):
                main_spec, self.main_on_region, self.region_types = region_spec["backbone"], True, []
            elif not self.region_types:
                self.region = None
        if not self.main_on_region and config.get("frame_size"):
            self.frame_size = tuple(int(v) for v in config["frame_size"])
        self.main_types = [t for t in self.bug_types if t not in self.region_types]
        self.backbone = build_backbone(main_spec)
        self.cam = _cam_head(self.backbone.out_channels, len(self.main_types))
        if self.region_types:
            self.region_backbone = build_backbone(region_spec["backbone"])
            self.region_cam = _cam_head(self.region_backbone.out_channels, len(self.region_types))
            order = self.main_types + self.region_types
            self.register_buffer("head_order", torch.tensor([order.index(t) for t in self.bug_types]), persistent=False)
            self.register_buffer("region_mean", torch.tensor(self.region_backbone.mean).view(1, 3, 1, 1), persistent=False)
            self.register_buffer("region_std", torch.tensor(self.region_backbone.std).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("mean", torch.tensor(self.backbone.mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(self.backbone.std).view(1, 3, 1, 1))

    @property
    def pretrained(self) -> bool:
        return bool(getattr(self.backbone, "pretrained", False))

    def _pool(self, cam: torch.Tensor) -> torch.Tensor:
        flat = cam.flatten(2) * self.pool_sharpness
        return (torch.logsumexp(flat, dim=2) - math.log(flat.shape[2])) / self.pool_sharpness

    def _region_branch(self, images: torch.Tensor, backbone: nn.Module, head: nn.Conv2d,
                       mean: torch.Tensor, std: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Scores pooled over the region's crop only; the map placed into the whole frame."""
        crop = self.region.crop(images, self.input_size)
        cam = head(backbone((crop - mean) / std))
        return self._pool(cam), self.region.place(cam, self.input_size)

    def activation_maps(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits per frame [N, T] and per location [N, T, h, w] (what the loss sees)."""
        if self.main_on_region:
            return self._region_branch(images, self.backbone, self.cam, self.mean, self.std)
        frame = images if self.frame_size is None else F.interpolate(images, size=self.frame_size, mode="bilinear", align_corners=False)
        cam = self.cam(self.backbone((frame - self.mean) / self.std))
        pooled = self._pool(cam)
        if not self.region_types:
            return pooled, cam
        region_pooled, region_cam = self._region_branch(images, self.region_backbone, self.region_cam,
                                                             self.region_mean, self.region_std)
        # one map for every type, on the finer of the two grids
        size = tuple(max(a, b) for a, b in zip(cam.shape[-2:], region_cam.shape[-2:]))
        if tuple(cam.shape[-2:]) != size:
            cam = F.interpolate(cam, size=size, mode="bilinear", align_corners=False)
        if tuple(region_cam.shape[-2:]) != size:
            region_cam = F.interpolate(region_cam, size=size, mode="bilinear", align_corners=False)
        pooled = torch.cat([pooled, region_pooled], dim=1).index_select(1, self.head_order)
        return pooled, torch.cat([cam, region_cam], dim=1).index_select(1, self.head_order)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits, cam = self.activation_maps(images)
        return torch.sigmoid(logits), torch.sigmoid(cam)


#: ``detect.model: auto`` picks one of these by the bug types (see ``resolve_model_name``).
AUTO, VIEWMODEL_CONFIG, WHOLE_FRAME_CONFIG = "auto", "compact_cnn_viewmodel", "compact_cnn"
TWO_BRANCH_CONFIG = "compact_cnn_lite_viewmodel"


def _cam_head(channels: int, bug_types: int) -> nn.Conv2d:
    """A 1x1 convolution from features to one activation map per bug type."""
    head = nn.Conv2d(channels, bug_types, kernel_size=1)
    nn.init.normal_(head.weight, std=0.01)
    nn.init.constant_(head.bias, -2.0)  # start out predicting "no bug": bugs are rare
    return head


def resolve_model_name(model: str, bug_types: Sequence[str]) -> str:
    """``model`` itself, unless it is ``auto``: then the offline default for these bug types.

    Every type shows on the viewmodel: the viewmodel-region CNN (it ranks FPPC frames better in
    the quality bench, for less compute). Some do and some need the whole frame: the two-branch
    CNN, whose full-resolution viewmodel branch keeps FPPC from being lost in a downscaled frame
    (the demo's held-out FPPC F1: 0.34 with the whole-frame CNN, 0.45 with it). None does:
    the whole-frame CNN, which every bug type can use."""
    if model != AUTO:
        return model
    viewmodel_types = set(get_model_config(VIEWMODEL_CONFIG)["region"]["bug_types"])
    wanted = set(bug_types)
    if wanted <= viewmodel_types:
        return VIEWMODEL_CONFIG
    return TWO_BRANCH_CONFIG if wanted & viewmodel_types else WHOLE_FRAME_CONFIG


def create_detector(model: str | dict[str, Any], bug_types: Sequence[str], seed: int | None = None) -> BugDetector:
    """A detector from a named config (or ``auto``), a JSON path or a config dict. With ``seed``,
    its initial weights depend on the seed alone (torch's global generator is seeded first);
    without it they depend on whatever used that generator before."""
    config = get_model_config(resolve_model_name(model, bug_types)) if isinstance(model, str) else model
    if seed is not None:
        torch.manual_seed(seed)
    return BugDetector(config, bug_types)


def save_checkpoint(path: Path, detector: BugDetector, extra: dict[str, Any] | None = None) -> None:
    """Write atomically: a checkpoint is either complete or absent."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": CHECKPOINT_FORMAT,
        "config": detector.config,
        "bug_types": detector.bug_types,
        "state_dict": detector.state_dict(),
        **(extra or {}),
    }
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(payload, tmp)
    tmp.replace(path)


def load_checkpoint(path: Path) -> tuple[BugDetector, dict[str, Any]]:
    """Rebuild a detector from a checkpoint; returns it with the checkpoint's other fields."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such detector checkpoint")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # torch raises many types for a damaged file
        raise InputError(f"{path}: unreadable detector checkpoint ({type(exc).__name__})") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise InputError(f"{path}: not a bugdet detector checkpoint")
    config = payload["config"]
    if config["backbone"].get("type") == "open_clip":
        config = copy.deepcopy(config)
        config["backbone"]["pretrained"] = "none"  # weights come from the checkpoint itself
    detector = BugDetector(config, payload["bug_types"])
    detector.load_state_dict(payload["state_dict"])
    detector.config = payload["config"]
    detector.eval()
    return detector, payload
