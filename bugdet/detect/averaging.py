"""Exponential moving average (EMA) of a detector's weights during training.

With a handful of labeled frames, the weights after any one optimiser step depend a lot on which
few frames the last batches held: two runs that differ only in their seed end far apart, and the
epoch that validation picks is partly luck. An average of the recent weights sits in the middle of
that wander. Validation, the kept "best" weights and the exported model all use the average; the
optimiser keeps stepping the live weights.
"""

from __future__ import annotations

import torch
from torch import nn


class WeightAverage:
    """EMA of every floating-point entry of a module's state (parameters and BatchNorm statistics).

    The decay ramps up from 0 as ``(1 + n) / (10 + n)`` until it reaches ``decay``, so early
    updates, when the average still holds the random initialisation, do not dominate it.
    """

    def __init__(self, module: nn.Module, decay: float):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay must be in (0, 1), got {decay}")
        self.decay = float(decay)
        self.reset(module)

    def update(self, module: nn.Module) -> None:
        d = min(self.decay, (1.0 + self.updates) / (10.0 + self.updates))
        self.updates += 1
        with torch.no_grad():
            for k, v in module.state_dict().items():
                avg = self.shadow[k]
                if avg.is_floating_point():
                    avg.mul_(d).add_(v.detach(), alpha=1.0 - d)
                else:  # counters such as BatchNorm's num_batches_tracked
                    avg.copy_(v)

    def reset(self, module: nn.Module) -> None:
        """Restart the average at the module's current weights (a new training phase)."""
        self.updates = 0
        self.shadow = {k: v.detach().clone() for k, v in module.state_dict().items()}

    def state_dict(self) -> dict:
        return {"decay": self.decay, "updates": self.updates, "shadow": {k: v.clone() for k, v in self.shadow.items()}}

    def load_state_dict(self, state: dict) -> None:
        self.decay, self.updates = float(state["decay"]), int(state["updates"])
        self.shadow = {k: v.clone() for k, v in state["shadow"].items()}
