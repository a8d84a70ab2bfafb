"""The weight average (EMA) used by training: its arithmetic, and that training keeps the average."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from bugdet.detect.averaging import WeightAverage
from bugdet.detect.data import LabeledFrame
from bugdet.detect.model import create_detector
from bugdet.detect.train import TrainSettings, Trainer

TINY = {"backbone": {"type": "compact_cnn", "widths": [8, 8, 8, 8, 8]}, "input_size": [32, 32], "pool_sharpness": 4.0}


def test_average_follows_the_ramped_decay_and_copies_counters() -> None:
    module = nn.BatchNorm1d(2)
    avg = WeightAverage(module, decay=0.5)
    with torch.no_grad():
        module.weight.fill_(3.0)  # started at 1
        module.num_batches_tracked.fill_(7)
    avg.update(module)  # first update: decay min(0.5, 1/10) = 0.1
    assert torch.allclose(avg.shadow["weight"], torch.full((2,), 0.1 * 1.0 + 0.9 * 3.0))
    assert int(avg.shadow["num_batches_tracked"]) == 7
    for _ in range(20):
        avg.update(module)
    assert torch.allclose(avg.shadow["weight"], torch.full((2,), 3.0), atol=1e-4)
    restored = WeightAverage(module, decay=0.5)
    restored.load_state_dict(avg.state_dict())
    assert restored.updates == avg.updates and torch.equal(restored.shadow["weight"], avg.shadow["weight"])
    with pytest.raises(ValueError, match="decay"):
        WeightAverage(module, decay=1.0)


def test_training_with_ema_returns_the_averaged_weights() -> None:
    rng = np.random.default_rng(0)
    frames = [LabeledFrame(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8), np.array([float(i % 4 == 0)], np.float32),
                           np.array([True]), i) for i in range(16)]
    torch.manual_seed(0)
    settings = TrainSettings(mode="supervised", epochs=1, steps_per_epoch=5, batch_size=4, seed=0, ema_decay=0.8)
    trainer = Trainer(create_detector(TINY, ["fppc"]), settings, labeled=frames, val=frames)
    result = trainer.fit()
    kept = result.detector.state_dict()
    for name, value in trainer.average.shadow.items():
        assert torch.equal(kept[name], value), name
    # ...which are not the live weights of the last step: five steps moved them away from the average.
    torch.manual_seed(0)
    plain = Trainer(create_detector(TINY, ["fppc"]), TrainSettings(**{**settings.__dict__, "ema_decay": 0.0}),
                    labeled=frames, val=frames).fit()
    assert not torch.equal(plain.detector.cam.weight, result.detector.cam.weight)
