"""Feature extractors for the detector. Each maps normalised images [N,3,H,W] to a feature map
[N,C,h,w], from which the detector's class-activation head reads both its scores and where.

- ``compact_cnn``: a small plain CNN trained from scratch; the offline default on CPU.
- ``open_clip``: the visual tower of an open_clip model (patch tokens as the map); pretrained
  where the user has weights, frozen or fine-tuned.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn
import torch.nn.functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _conv_bn(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class CompactCNN(nn.Module):
    """Stride-2 stages of two 3x3 convolutions each: cheap on CPU, and its output stride of 16
    keeps a localisation map fine enough to point at a weapon or a texture patch."""

    def __init__(self, widths: Sequence[int] = (24, 32, 64, 96, 128), coords: bool = False):
        super().__init__()
        layers: list[nn.Module] = []
        self.coords = coords
        cin = 5 if coords else 3
        for i, w in enumerate(widths):
            stride = 2 if i < 4 else 1
            layers += [_conv_bn(cin, w, stride), _conv_bn(w, w, 1)]
            cin = w
        self.features = nn.Sequential(*layers)
        self.out_channels = cin
        self.mean, self.std = IMAGENET_MEAN, IMAGENET_STD
        self.pretrained = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.coords:
            x = torch.cat([x, _coordinate_planes(x)], dim=1)
        return self.features(x)


def _coordinate_planes(x: torch.Tensor) -> torch.Tensor:
    """Two planes holding each pixel's x and y in [-1, 1] (CoordConv).

    A convolution cannot tell where on screen it is; first-person bugs are screen-anchored (the
    viewmodel always sits lower right), so the position is worth giving the network explicitly.
    """
    n, _, h, w = x.shape
    ys = torch.linspace(-1.0, 1.0, h, device=x.device, dtype=x.dtype).view(1, 1, h, 1).expand(n, 1, h, w)
    xs = torch.linspace(-1.0, 1.0, w, device=x.device, dtype=x.dtype).view(1, 1, 1, w).expand(n, 1, h, w)
    return torch.cat([xs, ys], dim=1)


class OpenClipBackbone(nn.Module):
    """An open_clip visual tower whose patch tokens form the feature map.

    Input is resized to the tower's native size inside the graph, so the detector keeps its own
    input size and the ONNX export carries the resize.
    """

    def __init__(self, model_name: str = "ViT-S-32", pretrained: str = "none", freeze: bool = False):
        super().__init__()
        from bugdet.embed.config import EmbedConfig
        from bugdet.embed.models import build_open_clip_model, resolve_model_spec

        spec = resolve_model_spec(EmbedConfig(model=model_name, pretrained=pretrained))
        model, _ = build_open_clip_model(spec)
        visual = model.visual
        if not hasattr(visual, "output_tokens"):
            raise ValueError(f"open_clip model {model_name} has no token output; use a ViT model")
        visual.output_tokens = True
        self.visual = visual
        self.image_size = tuple(visual.image_size) if isinstance(visual.image_size, (tuple, list)) else (visual.image_size,) * 2
        self.grid = tuple(s // p for s, p in zip(self.image_size, _patch_size(visual)))
        self.out_channels = int(visual.transformer.width)
        cfg = getattr(visual, "preprocess_cfg", {}) or {}
        self.mean = tuple(cfg.get("mean", (0.48145466, 0.4578275, 0.40821073)))
        self.std = tuple(cfg.get("std", (0.26862954, 0.26130258, 0.27577711)))
        self.pretrained = spec.pretrained
        self.weights_label = spec.label  # says "unpretrained" for random-init towers
        if freeze:
            for p in self.visual.parameters():
                p.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, size=self.image_size, mode="bilinear", align_corners=False)
        _, tokens = self.visual(x)
        n, length, c = tokens.shape
        gh, gw = self.grid
        return tokens.transpose(1, 2).reshape(n, c, gh, gw)


def _patch_size(visual: nn.Module) -> tuple[int, int]:
    ps = getattr(visual, "patch_size", None)
    if ps is None:
        ps = visual.conv1.kernel_size
    return tuple(ps) if isinstance(ps, (tuple, list)) else (ps, ps)


def build_backbone(spec: dict[str, Any]) -> nn.Module:
    kind = spec.get("type")
    if kind == "compact_cnn":
        return CompactCNN(widths=spec.get("widths", (24, 32, 64, 96, 128)), coords=bool(spec.get("coords", False)))
    if kind == "open_clip":
        return OpenClipBackbone(spec.get("model", "ViT-S-32"), spec.get("pretrained", "none"), bool(spec.get("freeze", False)))
    raise ValueError(f"unknown backbone type {kind!r} (expected compact_cnn or open_clip)")
