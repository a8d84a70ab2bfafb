"""Region detectors: the backbone sees one part of the screen at full resolution, and everything
outside it neither moves the scores nor lights the heatmap."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bugdet.detect.model import create_detector, load_checkpoint, save_checkpoint
from bugdet.detect.region import ScreenRegion, require_viewmodel_inside
from bugdet.errors import ConfigError, InputError

SIZE = (64, 96)
WHOLE = {"backbone": {"type": "compact_cnn", "widths": [8, 12, 16]}, "input_size": list(SIZE)}
CORNER = {**WHOLE, "region": {"box": [0.5, 0.5, 1.0, 1.0], "bug_types": ["fppc"]}}


def test_pixels_outside_the_region_change_nothing() -> None:
    detector = create_detector(CORNER, ["fppc"], seed=0).eval()
    x = torch.rand(2, 3, *SIZE, generator=torch.Generator().manual_seed(1))
    outside, inside = x.clone(), x.clone()
    outside[..., :32, :] = 0.0  # the top half
    outside[..., :, :48] = 1.0  # the left half
    inside[..., 40:50, 60:80] = 0.0
    with torch.no_grad():
        base, base_maps = detector(x)
        assert torch.equal(detector(outside)[0], base)
        assert not torch.allclose(detector(inside)[0], base)
    # heatmaps cover the whole frame at the backbone's scale, zero outside the corner
    assert base_maps.shape == (2, 1, 8, 12)
    assert float(base_maps[..., :4, :].max()) < 1e-9 and float(base_maps[..., :, :6].max()) < 1e-9
    assert float(base_maps[..., 4:, 6:].min()) > 1e-6


def test_region_heatmap_lines_up_with_a_whole_frame_detectors() -> None:
    whole = create_detector(WHOLE, ["fppc"]).eval()
    corner = create_detector(CORNER, ["fppc"]).eval()
    with torch.no_grad():
        assert whole(torch.zeros(1, 3, *SIZE))[1].shape == corner(torch.zeros(1, 3, *SIZE))[1].shape


def test_region_is_kept_in_checkpoints(tmp_path) -> None:
    detector = create_detector(CORNER, ["fppc"], seed=0).eval()
    save_checkpoint(tmp_path / "d.pt", detector)
    loaded, _ = load_checkpoint(tmp_path / "d.pt")
    x = torch.rand(1, 3, *SIZE)
    with torch.no_grad():
        assert torch.equal(detector(x)[0], loaded(x)[0])
    assert loaded.region == detector.region


def test_whole_frame_bug_types_are_refused() -> None:
    with pytest.raises(ConfigError, match="black_frame need the whole frame"):
        create_detector(CORNER, ["fppc", "black_frame"])
    with pytest.raises(ConfigError, match="need the whole frame"):
        create_detector("compact_cnn_viewmodel", ["missing_texture"])
    for box in ([0.5, 0.5, 0.4, 1.0], [0.0, 0.0, 1.0], [-0.1, 0.0, 1.0, 1.0]):
        with pytest.raises(ConfigError, match="region box"):
            create_detector({**WHOLE, "region": {"box": box, "bug_types": ["fppc"]}}, ["fppc"])


def test_shipped_viewmodel_config_covers_the_playtest_guns() -> None:
    """Every weapon of the playtest world, swaying and bobbing, stays inside the shipped box."""
    from bugdet.playtest.session import PlaytestSession, PlaytestSpec

    detector = create_detector("compact_cnn_viewmodel", ["fppc"])
    assert detector.input_size == (240, 320)
    masks = []
    for weapon in ("rifle", "shotgun", "pistol"):
        spec = PlaytestSpec(scene="park", seed=5, frames=40, width=320, height=240, prevalence=0.0, weapon=weapon)
        masks += [f.weapon_mask for f in PlaytestSession(spec).frames()]
    assert sum(int(m.sum()) for m in masks) > 0
    assert detector.region.coverage(masks) == 1.0
    require_viewmodel_inside(detector.region, masks)


def test_training_refuses_a_viewmodel_outside_the_region() -> None:
    region = ScreenRegion.from_config(CORNER["region"])
    gun = np.zeros((120, 160), bool)
    gun[70:120, 90:160] = True  # lower right: inside
    require_viewmodel_inside(region, [gun, None, np.zeros_like(gun)])
    left_handed = gun[:, ::-1]
    with pytest.raises(InputError, match="only 0% of the viewmodel"):
        require_viewmodel_inside(region, [left_handed])
    require_viewmodel_inside(None, [left_handed])  # whole-frame detectors see it anyway


def test_auto_picks_the_region_model_when_every_bug_type_shows_on_the_viewmodel() -> None:
    only_fppc = create_detector("auto", ["fppc"])
    assert only_fppc.region is not None and only_fppc.main_on_region
    whole = create_detector("auto", ["missing_texture", "black_frame"])
    assert whole.region is None and whole.input_size == (144, 192)


def test_auto_gives_fppc_its_own_full_resolution_branch_beside_whole_frame_types() -> None:
    mixed = create_detector("auto", ["fppc", "missing_texture"])
    assert mixed.region_types == ["fppc"] and mixed.main_types == ["missing_texture"]
    assert mixed.frame_size == (144, 192) and mixed.input_size == (240, 320)


TWO_BRANCH = {**WHOLE, "frame_size": [32, 48],
              "region": {"box": [0.5, 0.5, 1.0, 1.0], "bug_types": ["fppc"],
                         "backbone": {"type": "compact_cnn", "widths": [8, 12, 16, 16]}}}


def test_a_region_with_its_own_backbone_adds_a_branch_for_its_bug_types_only() -> None:
    """FPPC reads the viewmodel's corner at full resolution, whole-frame bugs the whole frame at
    ``frame_size``; callers still see one model, with scores and maps in their bug-type order."""
    detector = create_detector(TWO_BRANCH, ["missing_texture", "fppc", "black_frame"], seed=0).eval()
    assert detector.main_types == ["missing_texture", "black_frame"] and detector.region_types == ["fppc"]
    x = torch.rand(2, 3, *SIZE, generator=torch.Generator().manual_seed(1))
    corner = x.clone()
    corner[..., 40:60, 60:90] = 0.0  # inside the region: only fppc's branch sees it at full size
    top_left = x.clone()
    top_left[..., :24, :40] = 0.0  # outside the region: fppc's score must not move
    with torch.no_grad():
        scores, maps = detector(x)
        assert scores.shape == (2, 3) and maps.shape[:2] == (2, 3)
        moved = detector(top_left)[0]
        assert torch.equal(moved[:, 1], scores[:, 1])
        assert not torch.equal(moved[:, 0], scores[:, 0]) and not torch.equal(moved[:, 2], scores[:, 2])
        assert not torch.equal(detector(corner)[0][:, 1], scores[:, 1])
        # fppc's map is dark outside its corner; the whole-frame types' maps are not
        h = maps.shape[-2]
        assert float(maps[:, 1, : h // 2 - 1, :].max()) < 1e-9
        assert float(maps[:, 0, : h // 2 - 1, :].min()) > 1e-6
    # the branch's heads follow the names: swapping the order swaps the outputs
    swapped = create_detector(TWO_BRANCH, ["fppc", "missing_texture", "black_frame"], seed=0).eval()
    swapped.load_state_dict(detector.state_dict())
    with torch.no_grad():
        assert torch.equal(swapped(x)[0][:, 0], scores[:, 1])


def test_a_two_branch_config_with_one_kind_of_bug_type_builds_one_branch(tmp_path) -> None:
    only_fppc = create_detector(TWO_BRANCH, ["fppc"], seed=0)
    assert only_fppc.main_on_region and not only_fppc.region_types  # the region's own backbone, on the crop
    assert only_fppc.backbone.out_channels == 16 and not hasattr(only_fppc, "region_backbone")
    only_frame = create_detector(TWO_BRANCH, ["missing_texture"], seed=0)
    assert only_frame.region is None and only_frame.frame_size == (32, 48)
    both = create_detector(TWO_BRANCH, ["fppc", "missing_texture"], seed=0).eval()
    save_checkpoint(tmp_path / "d.pt", both)
    loaded, _ = load_checkpoint(tmp_path / "d.pt")
    x = torch.rand(1, 3, *SIZE)
    with torch.no_grad():
        assert torch.equal(both(x)[0], loaded(x)[0]) and torch.equal(both(x)[1], loaded(x)[1])


def test_a_two_branch_detector_exports_to_onnx_with_parity(tmp_path) -> None:
    pytest.importorskip("onnxruntime")
    from bugdet.export.package import export_package

    detector = create_detector(TWO_BRANCH, ["fppc", "missing_texture"], seed=0).eval()
    frames = [np.random.default_rng(i).integers(0, 256, (*SIZE, 3), dtype=np.uint8) for i in range(3)]
    exported = export_package(detector, frames, tmp_path / "versions", name="two-branch", version="1",
                              thresholds={"fppc": 0.5, "missing_texture": 0.5})
    assert exported.parity.max_abs_diff < 1e-4
