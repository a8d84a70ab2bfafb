"""A small convolutional detector that satisfies the detector contract.

The contract (what the training stage produces and export consumes): a ``torch.nn.Module`` with
``bug_types: list[str]``, ``input_size: (H, W)`` and ``forward(images float32 [N,3,H,W] RGB in
[0,1]) -> (scores [N,T] in [0,1], heatmaps [N,T,h,w] in [0,1])``, normalising inside forward.

This network is that contract at its simplest: a strided conv trunk, a 1x1 head giving one
logit map per bug type, and image scores from a soft maximum over each map. It exists so that the
exporter, the service and its benchmark can be exercised end to end on a real network before (and
independently of) the trained detector; its weights mean nothing until someone trains it.
"""

from __future__ import annotations

import torch
from torch import nn

#: ImageNet statistics; applied inside forward so callers always pass plain [0, 1] RGB.
_MEAN = (0.485, 0.456, 0.406)
_STD = (0.229, 0.224, 0.225)


class ReferenceDetector(nn.Module):
    """Conv trunk (``depth`` stride-2 blocks of ``width``·2^i channels) + per-bug-type heatmap head."""

    def __init__(self, bug_types: list[str], input_size: tuple[int, int] = (64, 64), width: int = 16, depth: int = 3):
        super().__init__()
        self.bug_types = list(bug_types)
        self.input_size = (int(input_size[0]), int(input_size[1]))
        layers: list[nn.Module] = []
        channels = 3
        for i in range(depth):
            out = width * 2**i
            layers += [
                nn.Conv2d(channels, out, 3, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(out),
                nn.ReLU(inplace=True),
                nn.Conv2d(out, out, 3, padding=1, bias=False),
                nn.BatchNorm2d(out),
                nn.ReLU(inplace=True),
            ]
            channels = out
        self.trunk = nn.Sequential(*layers)
        self.head = nn.Conv2d(channels, len(self.bug_types), 1)
        self.register_buffer("mean", torch.tensor(_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.head(self.trunk((images - self.mean) / self.std))
        # A soft maximum: a bug anywhere in the frame makes the frame score high, and the
        # gradient reaches every location rather than only the argmax.
        pooled = torch.logsumexp(logits.flatten(2) * 4.0, dim=2) / 4.0
        return torch.sigmoid(pooled), torch.sigmoid(logits)
