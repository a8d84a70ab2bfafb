"""``bugdet bench quality --world openarena``: the low-label protocol on held-out OpenArena maps.

The layout tests need no game. The end-to-end test records four tiny sessions (one map per
split, two bug types) with the real engine and skips without it, like tests/test_world_openarena.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bugdet.bench.quality.layout import OpenArenaLayout, PlaytestLayout, layout_for
from bugdet.bench.quality.protocol import QualitySettings, data_key, session_specs
from bugdet.worlds.openarena.bugs import OPENARENA_BUGS
from bugdet.worlds.openarena.split import split_for_map
from tests.test_world_openarena import CAN_RECORD, SKIP_REASON


def test_openarena_layout_splits_by_map_with_enough_bug_frames_per_type() -> None:
    s = QualitySettings.for_world("openarena", quick=True)
    assert s.world == "openarena" and s.bug_types == list(OPENARENA_BUGS)
    assert "floor" not in s.methods and {"supervised", "objective", "pretrain_finetune"} <= set(s.methods)
    assert s.ks == [0, 10] and s.weapon_source == "engine"
    specs = session_specs(s)
    maps = {split: sorted({x.scene for x in specs if x.split == split}) for split in ("train", "labelpool", "val", "test")}
    assert maps == {"train": ["oa_dm1", "oa_dm2", "oa_dm3", "oa_dm4"], "labelpool": ["oa_dm1", "oa_dm2", "oa_dm3", "oa_dm4"],
                    "val": ["oa_dm5"], "test": ["oa_dm6", "oa_dm7"]}
    for x in specs:  # every session is on a map of its split (the label pool is drawn from train maps)
        assert split_for_map(x.scene) == ("train" if x.split == "labelpool" else x.split)
    for split, total, prevalence in (("train", s.unlabeled_frames, s.unlabeled_prevalence), ("labelpool", s.label_pool_frames,
                                     s.label_pool_prevalence), ("val", s.val_frames, s.val_prevalence), ("test", s.test_frames, s.prevalence)):
        mine = [x for x in specs if x.split == split]
        assert sum(x.frames for x in mine) == total and {x.prevalence for x in mine} == {prevalence}
        if split != "train":  # the evaluated splits hold ~10 or more bug frames per type
            assert total * prevalence / len(OPENARENA_BUGS) >= 10, split
    assert total <= 1000 and s.unlabeled_prevalence / len(OPENARENA_BUGS) == pytest.approx(0.01)
    assert len({x.name for x in specs}) == len(specs)  # no two sessions share a capture folder
    # seeds of the label pool differ from the unlabeled pool's on the same maps (other bots, other textures)
    assert not {(x.scene, x.seed) for x in specs if x.split == "train"} & {(x.scene, x.seed) for x in specs if x.split == "labelpool"}


def test_each_world_records_into_its_own_folder_and_bench_project(tmp_path: Path) -> None:
    oa, pt = QualitySettings.for_world("openarena", quick=True), QualitySettings.for_world("playtest", quick=True)
    assert pt == QualitySettings.quick()  # the playtest world's defaults are unchanged
    assert layout_for("openarena").captures_dir(tmp_path, oa) != layout_for("playtest").captures_dir(tmp_path, pt)
    assert data_key(oa) != data_key(pt)
    assert isinstance(layout_for("openarena"), OpenArenaLayout) and isinstance(layout_for("playtest"), PlaytestLayout)
    # the mask bank on OpenArena is cut by the grid: the world writes no object-ID maps
    assert layout_for("openarena").segment_backend == "opencv" and layout_for("playtest").segment_backend == "engine"
    small = QualitySettings(**{**oa.__dict__, "maps": {"train": ["oa_dm2"], "val": ["oa_dm5"], "test": ["oa_dm7"]}})
    assert {x.scene for x in session_specs(small)} == {"oa_dm2", "oa_dm5", "oa_dm7"}
    assert data_key(small) != data_key(oa)


@pytest.mark.parametrize("args, message", [
    (["--world", "doom"], "unknown world 'doom'"),
    (["--world", "openarena", "--bugs", "fppc,z_fighting"], "openarena world cannot show fppc"),
])
def test_bench_quality_refuses_a_bad_world_or_bug_type_in_one_line(tmp_path: Path, capsys, args, message) -> None:
    from bugdet.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["bench", "quality", "--quick", *args, "--workdir", str(tmp_path / "w"), "--json", str(tmp_path / "q.json")])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and message in err and "\n" not in err
    assert not (tmp_path / "w").exists() and not (tmp_path / "q.json").exists()


@pytest.mark.slow
@pytest.mark.skipif(not CAN_RECORD, reason=SKIP_REASON)
def test_openarena_bench_end_to_end_on_tiny_captures(tmp_path: Path) -> None:
    """Four tiny sessions (one map per split) through record, ingest, grid segmentation, the mask
    bank, every method and the per-bug-type scores; a second run reuses the captures."""
    from bugdet.bench.quality.protocol import QualityBenchmark, prepare_data
    from bugdet.segment.masks import iter_masks

    base = QualitySettings.for_world("openarena", quick=True)
    s = QualitySettings(**{**base.__dict__, "bug_types": ["low_res_texture", "black_frame"], "ks": [0, 2], "seeds": [0],
                           "maps": {"train": ["oa_dm1"], "val": ["oa_dm5"], "test": ["oa_dm6"]},
                           "unlabeled_frames": 16, "label_pool_frames": 20, "label_pool_prevalence": 0.5,
                           "val_frames": 20, "val_prevalence": 0.5, "test_frames": 20, "prevalence": 0.5,
                           "unlabeled_prevalence": 0.2, "good_pool": 4, "objective_good_frames": 2, "segment_frames": 2,
                           "epochs": 1, "finetune_epochs": 1, "steps_per_epoch": 2, "batch_size": 4})
    bench = QualityBenchmark(s, tmp_path)
    summary = bench.run()
    assert summary["world"] == "openarena" and summary["detector_model"] == "compact_cnn"  # no FPPC: whole frame
    kept = [t for t in ("low_res_texture", "black_frame") if t not in summary["data"]["dropped_bug_types"]]
    assert kept, summary["data"]["dropped_bug_types"]
    runs = {(r["bug_type"], r["method"], r["labeled_bugs"]) for r in summary["results"]}
    assert runs == {(t, m, k) for t in kept for m, k in (("objective", 0), ("supervised", 2), ("pretrain_finetune", 2))}
    assert all(0.0 <= r["f1"] <= 1.0 and r["tp"] + r["fn"] > 0 for r in summary["results"])
    assert summary["data"]["layout"]["splits"]["test"]["scenes"] == ["oa_dm6"]
    assert summary["data"]["record_fps"]["frames"] == 76 and summary["data"]["record_fps"]["fps"] > 0
    # the mask bank came from the grid backend on train frames only
    conn = bench.data.project.connect()
    masks = list(iter_masks(conn))
    assert masks and {m.backend for m in masks} == {"grid"}
    train_ids = {r.id for r in bench.data.train_rows}
    assert {m.frame_id for m in masks} <= train_ids
    json.dumps(summary)  # the JSON the command writes
    # a second run on the same workdir records nothing again (bug_types was narrowed in place: restore it)
    recorded = sorted(p.stat().st_mtime for p in (tmp_path / "captures").rglob("session.json"))
    prepare_data(QualitySettings(**{**s.__dict__, "bug_types": ["low_res_texture", "black_frame"]}), tmp_path, bench.size,
                 bench.progress)
    assert sorted(p.stat().st_mtime for p in (tmp_path / "captures").rglob("session.json")) == recorded
