"""The SAM backend's wiring, exercised with a tiny randomly initialised (unpretrained) SAM.

Real SAM weights cannot be downloaded here, so these tests check the plumbing, not mask
quality: a ``Sam`` module built from the package's own ImageEncoderViT / PromptEncoder /
MaskDecoder with tiny sizes (64 px input, 32-dim features) goes through the same
:class:`SamBackend` code as a real checkpoint, and the loader's error paths run for real.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch

from test_segment_scenes import draw_scene

from bugdet.segment.automatic import AutomaticMaskGenerator
from bugdet.segment.config import SamConfig, SegmentConfig
from bugdet.segment.errors import CheckpointError, PromptError
from bugdet.segment.factory import BuildContext, build_predictor
from bugdet.segment.sam_backend import SamBackend, load_sam

IMG_SIZE, PATCH, DIM = 64, 8, 32


def tiny_sam():
    from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

    torch.manual_seed(0)
    grid = IMG_SIZE // PATCH
    return Sam(
        image_encoder=ImageEncoderViT(
            img_size=IMG_SIZE, patch_size=PATCH, embed_dim=DIM, depth=1, num_heads=2, mlp_ratio=2, out_chans=DIM,
            qkv_bias=True, norm_layer=partial(torch.nn.LayerNorm, eps=1e-6), use_rel_pos=True, window_size=0,
            global_attn_indexes=(),
        ),
        prompt_encoder=PromptEncoder(
            embed_dim=DIM, image_embedding_size=(grid, grid), input_image_size=(IMG_SIZE, IMG_SIZE), mask_in_chans=4
        ),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=3,
            transformer=TwoWayTransformer(depth=1, embedding_dim=DIM, mlp_dim=64, num_heads=2),
            transformer_dim=DIM,
            iou_head_depth=1,
            iou_head_hidden_dim=16,
        ),
    )


@pytest.fixture(scope="module")
def backend():
    return SamBackend(tiny_sam())


@pytest.fixture(scope="module")
def frame():
    return draw_scene(seed=2, width=96, height=72).rgb


def test_prompts_return_full_size_masks(backend, frame):
    backend.set_image(frame)  # SAM's transform resizes the 96x72 frame to the encoder's 64 px
    for kwargs in (dict(points=[(40, 30)]), dict(points=[(40, 30), (80, 60)], labels=[1, 0]), dict(box=(10, 10, 50, 40))):
        mask, score = backend.predict(**kwargs)
        assert mask.shape == frame.shape[:2] and mask.dtype == bool and mask.any()
        assert 0.0 <= score <= 1.0
    with pytest.raises(PromptError, match="outside"):
        backend.predict(points=[(96, 10)])


def test_grid_candidates_and_automatic_mode(backend, frame):
    backend.set_image(frame)
    per_point = backend.point_candidates(np.array([[10.0, 10.0], [50.0, 30.0]]))
    assert [len(c) for c in per_point] == [3, 3]  # SAM's three multimask outputs per point
    for candidates in per_point:
        for c in candidates:
            assert c.mask.shape == frame.shape[:2] and 0.0 <= c.score <= 1.0
    # Random weights give unstable masks (score ~0), so accept every non-empty mask here.
    cfg = SegmentConfig(score_threshold=0.0, min_area_fraction=0.0, max_area_fraction=1.0, points_per_side=4)
    masks = AutomaticMaskGenerator(backend, cfg, points_per_batch=5).generate(frame)
    assert 0 < len(masks) <= 4 * 3 * 3
    assert all(c.area > 0 for c in masks)


def test_missing_checkpoint_is_a_clear_error(tmp_path: Path):
    with pytest.raises(CheckpointError, match="not set"):
        build_predictor(SegmentConfig(backend="sam"))
    cfg = SegmentConfig(backend="sam", sam=SamConfig(checkpoint="weights/sam_vit_b.pth"))
    with pytest.raises(CheckpointError, match=r"weights/sam_vit_b.pth: no such file"):
        build_predictor(cfg, context=BuildContext(root=tmp_path))


def test_unloadable_checkpoints_are_clear_errors(tmp_path: Path):
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"this is not a checkpoint")
    with pytest.raises(CheckpointError, match="not a loadable vit_b SAM checkpoint"):
        load_sam(SamConfig(checkpoint=str(garbage)))
    # A real state dict of the wrong architecture: the tiny SAM's weights are not vit_b's.
    tiny = tmp_path / "tiny.pth"
    torch.save(tiny_sam().state_dict(), tiny)
    with pytest.raises(CheckpointError, match="not a loadable vit_b SAM checkpoint"):
        load_sam(SamConfig(checkpoint="tiny.pth", model_type="vit_b"), root=tmp_path)
