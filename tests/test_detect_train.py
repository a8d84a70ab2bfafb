"""Detector training on real playtest frames: overfitting, exact resume, every mode, checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bugdet.augment import build_objective
from bugdet.detect.data import ObjectiveSampler
from bugdet.detect.metrics import confusion_at
from bugdet.detect.model import create_detector, load_checkpoint, save_checkpoint
from bugdet.detect.train import TrainSettings, Trainer, predict_scores
from bugdet.errors import InputError

TINY = {"backbone": {"type": "compact_cnn", "widths": [8, 12, 16, 16, 24]}, "input_size": [60, 80], "pool_sharpness": 4.0}
SIZE = (60, 80)


@pytest.fixture(scope="module")
def playtest():
    """120 frames of a park session at 160x120 with FPPC at 20% prevalence, in memory."""
    from conftest import record_fppc_session

    frames, targets, sources = record_fppc_session(seed=3, frames=120, size=SIZE)
    bugs = [f for f in frames if f.is_bug]
    assert len(bugs) >= 10, "the playtest world must produce FPPC frames at the asked prevalence"
    return frames, targets, sources


def settings(**kw) -> TrainSettings:
    base = dict(epochs=3, steps_per_epoch=4, batch_size=8, lr=3e-3, patience=10, seed=0)
    base.update(kw)
    return TrainSettings(**base)


def test_supervised_training_overfits_a_tiny_set(playtest) -> None:
    frames, _, _ = playtest
    bugs = [f for f in frames if f.is_bug][:6]
    goods = [f for f in frames if not f.is_bug][:10]
    tiny = bugs + goods
    detector = create_detector(TINY, ["fppc"])
    trainer = Trainer(detector, settings(mode="supervised", epochs=12, steps_per_epoch=6, bug_fraction=0.4), labeled=tiny, val=tiny)
    result = trainer.fit()
    losses = [h["loss"] for h in result.history]
    assert losses[-1] < 0.5 * losses[0]
    scores = predict_scores(result.detector, [f.rgb for f in tiny])[:, 0]
    labels = np.array([f.is_bug for f in tiny])
    c = confusion_at(scores, labels, result.thresholds["fppc"])
    assert c.f1 == 1.0, c


class StopAfter:
    """A progress sink that interrupts training after ``n`` steps, as Ctrl-C or a kill would."""

    def __init__(self, n: int):
        self.n = n

    def start(self, description: str, total: int | None) -> None:
        pass

    def advance(self, n: int = 1) -> None:
        self.n -= n
        if self.n < 0:
            raise KeyboardInterrupt


@pytest.mark.parametrize("ema_decay", [0.0, 0.9])
def test_interrupted_run_resumes_to_identical_weights(playtest, tmp_path, ema_decay: float) -> None:
    frames, targets, sources = playtest
    sampler = ObjectiveSampler([build_objective("fppc")], targets, sources, ["fppc"], SIZE)
    labeled = [f for f in frames if f.is_bug][:4] + [f for f in frames if not f.is_bug][:8]
    val = frames[::3]

    def trainer(run_dir, progress=None):
        torch.manual_seed(123)  # same initial weights for both runs
        return Trainer(create_detector(TINY, ["fppc"]), settings(mode="pretrain_finetune", finetune_epochs=2, ema_decay=ema_decay),
                       labeled=labeled, objective=sampler, val=val, run_dir=run_dir, progress=progress)

    straight = trainer(tmp_path / "a").fit()
    with pytest.raises(KeyboardInterrupt):
        trainer(tmp_path / "b", StopAfter(13)).fit()  # dies inside the pre-training's 4th epoch
    assert (tmp_path / "b" / "last.pt").exists()
    resumed = trainer(tmp_path / "b").fit()
    for (name, a), b in zip(straight.detector.state_dict().items(), resumed.detector.state_dict().values()):
        assert torch.equal(a, b), name
    assert [h["phase"] for h in resumed.history] == ["pretrain"] * 3 + ["finetune"] * 2
    assert resumed.thresholds == straight.thresholds


@pytest.mark.parametrize("mode", ["objective", "multitask"])
def test_objective_modes_train_and_calibrate(playtest, mode: str) -> None:
    frames, targets, sources = playtest
    sampler = ObjectiveSampler([build_objective("fppc")], targets, sources, ["fppc"], SIZE)
    labeled = [f for f in frames if f.is_bug][:4] + [f for f in frames if not f.is_bug][:8]
    result = Trainer(create_detector(TINY, ["fppc"]), settings(mode=mode), labeled=labeled if mode == "multitask" else [],
                     objective=sampler, val=frames[::2]).fit()
    assert result.calibrated["fppc"] and 0.0 <= result.thresholds["fppc"] <= 1.0
    assert len(result.history) == 3 and all(np.isfinite(h["loss"]) for h in result.history)


def test_objective_batches_pair_positives_with_negatives_and_masks(playtest) -> None:
    _, targets, sources = playtest
    sampler = ObjectiveSampler([build_objective("fppc")], targets, sources, ["fppc"], SIZE)
    batch = sampler.batch(np.random.default_rng(0), 8, (4, 5))
    assert batch.labels[:, 0].tolist() == [1, 0] * 4  # each pair: positive then its negative
    coverage = batch.masks[:, 0].flatten(1).sum(1)
    assert (coverage[0::2] > 0).all() and (coverage[1::2] == 0).all()


def test_colour_jitter_touches_labeled_frames_only(playtest) -> None:
    """Multi-task batches: the real labeled frames are jittered, the objective pairs are not."""
    from bugdet.detect.train import plan_phases

    frames, targets, sources = playtest
    labeled = [f for f in frames if f.is_bug][:4] + [f for f in frames if not f.is_bug][:8]
    batches = {}
    for strength in (0.0, 1.0):
        sampler = ObjectiveSampler([build_objective("fppc")], targets, sources, ["fppc"], SIZE)
        s = settings(mode="multitask", color_jitter=strength, batch_size=16, objective_fraction=0.5)
        trainer = Trainer(create_detector(TINY, ["fppc"]), s, labeled=labeled, objective=sampler, val=frames[::4])
        batches[strength] = trainer._batch(plan_phases(s)[0], np.random.default_rng(5))
    plain, jittered = batches[0.0].images, batches[1.0].images
    assert torch.equal(plain[:8], jittered[:8])  # objective pairs: identical
    labeled_change = (plain[8:] - jittered[8:]).abs().flatten(1).mean(1)
    assert bool((labeled_change > 0.005).all())


def test_modes_refuse_missing_inputs(playtest) -> None:
    frames, _, _ = playtest
    goods = [f for f in frames if not f.is_bug][:5]
    with pytest.raises(ValueError, match="at least one labeled bug"):
        Trainer(create_detector(TINY, ["fppc"]), settings(mode="supervised"), labeled=goods)
    with pytest.raises(ValueError, match="needs an objective"):
        Trainer(create_detector(TINY, ["fppc"]), settings(mode="objective"))


def test_checkpoint_round_trip_and_bad_files(tmp_path) -> None:
    detector = create_detector(TINY, ["fppc", "missing_texture"]).eval()
    save_checkpoint(tmp_path / "d.pt", detector, {"thresholds": {"fppc": 0.7}})
    loaded, payload = load_checkpoint(tmp_path / "d.pt")
    x = torch.rand(2, 3, *SIZE)
    with torch.no_grad():
        for a, b in zip(detector(x), loaded(x)):
            assert torch.equal(a, b)
    assert payload["thresholds"] == {"fppc": 0.7} and loaded.bug_types == ["fppc", "missing_texture"]
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="unreadable detector checkpoint"):
        load_checkpoint(tmp_path / "bad.pt")
    with pytest.raises(InputError, match="no such detector checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")


def test_region_detector_trains_on_the_objective_and_refuses_a_region_without_the_gun(playtest) -> None:
    frames, targets, sources = playtest
    corner = {**TINY, "region": {"box": [0.45, 0.45, 1.0, 1.0], "bug_types": ["fppc"]}}
    sampler = ObjectiveSampler([build_objective("fppc")], targets, sources, ["fppc"], SIZE)
    result = Trainer(create_detector(corner, ["fppc"]), settings(mode="objective"), objective=sampler, val=frames[::2]).fit()
    assert result.calibrated["fppc"] and all(np.isfinite(h["loss"]) for h in result.history)
    sky = {**TINY, "region": {"box": [0.0, 0.0, 0.4, 0.4], "bug_types": ["fppc"]}}
    with pytest.raises(InputError, match="of the viewmodel's pixels lie inside"):
        Trainer(create_detector(sky, ["fppc"]), settings(mode="objective"), objective=sampler, val=frames[::2])
