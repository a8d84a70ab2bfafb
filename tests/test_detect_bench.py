"""Pieces of the quality benchmark: aggregation, the targets check, the report, the floor."""

from __future__ import annotations

import numpy as np
import pytest

from bugdet.detect.floor import ViewmodelDifferenceFloor
from bugdet.bench.quality.protocol import RunResult, aggregate, check_targets
from bugdet.bench.quality.report import render_report


def run(method: str, k: int, seed: int, f1: float) -> RunResult:
    return RunResult("fppc", method, k, seed, f1, f1 / 2, f1, 0.5, 1, 1, 1, 1.0)


def test_aggregate_means_and_spreads_over_seeds() -> None:
    rows = aggregate([run("supervised", 10, 0, 0.2), run("supervised", 10, 1, 0.4), run("multitask", 10, 0, 0.7)])
    sup = next(r for r in rows if r["method"] == "supervised")
    assert sup["seeds"] == 2 and sup["f1"] == pytest.approx(0.3) and sup["f1_std"] == pytest.approx(0.1)


def test_targets_are_checked_on_means() -> None:
    results = [run("supervised", 10, 0, 0.30), run("multitask", 10, 0, 0.55), run("pretrain_finetune", 10, 0, 0.45),
               run("objective", 0, 0, 0.35), run("supervised", 25, 0, 0.40)]
    t = check_targets(results)
    assert t["best_weak_f1_at_k10"] == pytest.approx(0.55)
    assert t["weak_minus_supervised_f1_at_k10"] == pytest.approx(0.25) and t["weak_beats_supervised_by_0_20_at_k10"]
    assert t["f1_at_least_0_80_at_k10"] is False
    assert t["objective_only_beats_supervised_k25"] is False
    assert check_targets([run("objective", 0, 0, 0.3)])["weak_beats_supervised_by_0_20_at_k10"] is None


def test_aggregate_carries_the_event_level_metrics_with_spreads() -> None:
    a, b = run("supervised", 10, 0, 0.2), run("supervised", 10, 1, 0.4)
    a.episodes, a.episode_recall, a.false_alarms_per_1k, a.episode_recall_at_fa_budget = 8, 0.75, 2.0, 0.5
    b.episodes, b.episode_recall, b.false_alarms_per_1k, b.episode_recall_at_fa_budget = 8, 1.0, 1.0, 0.25
    row = aggregate([a, b])[0]
    assert row["episodes"] == 8
    assert row["episode_recall"] == pytest.approx(0.875) and row["episode_recall_std"] == pytest.approx(0.125)
    assert row["false_alarms_per_1k"] == pytest.approx(1.5) and row["false_alarms_per_1k_std"] == pytest.approx(0.5)
    assert row["episode_recall_at_fa_budget"] == pytest.approx(0.375)
    assert row["episode_recall_at_fa_budget_std"] == pytest.approx(0.125)
    assert row["f1"] == pytest.approx(0.3) and row["pr_auc_std"] == pytest.approx(0.05)  # the frame-level keys stay


def test_a_run_is_scored_on_its_test_captures_episodes(tmp_path) -> None:
    """The bench lines the test frames up on their captures' timelines by frame id: two
    captures of 1,000 frames, the test frames listed out of time order."""
    from types import SimpleNamespace

    from bugdet.bench.quality.protocol import BenchData, QualityBenchmark, QualitySettings, frames_timeline
    from bugdet.detect.data import LabeledFrame

    n = 1000
    rows = [SimpleNamespace(id=10_000 + c * n + i, source_id=c, source_index=i) for c in (5, 6) for i in range(n)]
    order = np.random.default_rng(0).permutation(2 * n)
    bug = np.zeros(2 * n, bool)  # in time order: capture 5 has episodes at 100-103 and 998-999, capture 6 at 0-1
    bug[[100, 101, 102, 103, 998, 999, n, n + 1]] = True
    score = np.zeros(2 * n)
    score[[101, 999, n + 1]] = [0.9, 0.6, 0.4]  # one frame of each episode
    score[[500, 501, n + 500]] = [0.8, 0.8, 0.7]  # false alarms: a two-frame run, and a frame in capture 6
    frames = [LabeledFrame(np.zeros((2, 2, 3), np.uint8), np.array([float(bug[j])], np.float32), np.ones(1, bool),
                           rows[j].id) for j in order]
    data = BenchData(None, [], [], [], [], frames, rows, [], [], test_timeline=frames_timeline(frames, rows))
    bench = QualityBenchmark(QualitySettings(bug_types=["fppc"]), tmp_path)
    bench.data = data
    bench._record_one("fppc", "supervised", 10, 0, score[order], threshold=0.5)
    r = bench.results[0]
    assert r.episodes == 3  # capture 5 ends on a bug and capture 6 starts on one: two episodes
    assert r.episode_recall == pytest.approx(2 / 3) and r.false_alarms_per_1k == pytest.approx(1.0)  # 2 alarms / 2,000
    # 2,000 frames allow two false alarms: .9 (bug), .8 (one run of two), .7 (two), .6 (bug), .4 (bug), 0 (all)
    assert r.threshold_at_fa_budget == 0.0 and r.episode_recall_at_fa_budget == 1.0
    bench._record_one("fppc", "supervised", 25, 0, score[order] + np.where(order == n + 700, 0.75, 0.0), threshold=0.5)
    # a false alarm at .75 makes .7 the third: the sweep stops at .75
    assert bench.results[1].threshold_at_fa_budget == 0.75 and bench.results[1].episode_recall_at_fa_budget == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="not among the split's rows"):
        frames_timeline(frames, rows[1:])


def test_terminal_line_shows_frame_and_event_level() -> None:
    from bugdet.bench.quality.report import terminal_line

    r = run("supervised", 10, 0, 0.5)
    r.episodes, r.episode_recall, r.false_alarms_per_1k, r.episode_recall_at_fa_budget = 12, 0.75, 1.5, 0.5
    line = terminal_line(aggregate([r])[0], 1.0)
    assert "F1 0.500±0.000  PR-AUC 0.250  P@R0.5 0.500" in line
    assert line.endswith("episodes 12: found 0.50±0.00 at <=1 FA/1k, 0.75 at the threshold (1.50 FA/1k)")


def test_report_is_self_contained_html() -> None:
    rng = np.random.default_rng(0)
    labels = (np.arange(40) % 10 == 0).astype(np.float32)[:, None]
    curves = {f"fppc|{m}|10|0": {"scores": (labels[:, 0] * 0.5 + rng.random(40) * 0.6).tolist(), "threshold": 0.6}
              for m in ("supervised", "multitask")}
    results = [run("supervised", 10, 0, 0.3), run("multitask", 10, 0, 0.6)]
    summary = {"prevalence": 0.01, "test_prevalence_measured": 0.1, "data": {"mask_bank": "x"},
               "targets": check_targets(results), "aggregate": aggregate(results),
               "results": [r.__dict__ for r in results]}
    images = [rng.integers(0, 255, (24, 32, 3), dtype=np.uint8) for _ in range(40)]
    html = render_report(summary, curves, images, labels, ["fppc"])
    assert html.count("data:image/png;base64,") == 1 + 1 + 6 + 4  # F1 plot, PR plot, 6 worst goods, all 4 bugs
    assert "http://" not in html and "https://" not in html and "<script" not in html
    assert "<th>episode_recall_at_fa_budget</th>" in html and "<th>false_alarms_per_1k</th>" in html
    assert "<th>precision_at_recall_0_5</th>" in html


def test_viewmodel_floor_scores_covered_weapons_higher() -> None:
    h, w = 120, 160
    rng = np.random.default_rng(1)
    weapon = np.zeros((h, w), bool)
    weapon[80:120, 100:150] = True
    goods, masks = [], []
    for _ in range(5):
        frame = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
        frame[weapon] = (60, 60, 60)
        goods.append(frame)
        masks.append(weapon)
    floor = ViewmodelDifferenceFloor(size=(h, w)).fit(goods, masks)
    clean = goods[0].copy()
    covered = clean.copy()
    covered[80:120, 100:130] = (200, 180, 40)  # a wall drawn over 60% of the gun
    scores = floor.score([clean, covered])
    assert scores[0] == pytest.approx(0.0) and scores[1] == pytest.approx(0.6, abs=0.05)
    with pytest.raises(ValueError, match="at least one good frame"):
        ViewmodelDifferenceFloor().fit([], [])


@pytest.mark.slow
def test_quality_benchmark_end_to_end_on_tiny_captures(tmp_path) -> None:
    """The whole protocol on captures small enough for a few minutes: every method, every k."""
    from bugdet.bench.quality.protocol import METHODS, QualityBenchmark, QualitySettings

    s = QualitySettings(ks=[0, 2], seeds=[0], scenes=["park"], width=160, height=120, unlabeled_frames=80,
                        label_pool_frames=160, label_pool_prevalence=0.15, val_frames=120, val_prevalence=0.1,
                        test_frames=200, prevalence=0.05, good_pool=10, segment_frames=6, epochs=1,
                        finetune_epochs=1, steps_per_epoch=2, batch_size=8, sessions_per_split=2)
    s.methods = list(METHODS)
    bench = QualityBenchmark(s, tmp_path)
    summary = bench.run()
    methods = {(r["method"], r["labeled_bugs"]) for r in summary["results"]}
    assert methods == {("floor", 0), ("objective", 0), ("supervised", 2), ("pretrain_finetune", 2), ("exemplar_finetune", 2),
                       ("multitask", 2), ("self_training", 2), ("knn_self_training", 2)}
    # each self-training run reports what its pseudo-labels held, checked against the pool's truth
    notes = summary["pseudo_labels"]
    assert set(notes) == {"self_training|2|0", "knn_self_training|2|0"}
    assert all(n["frames"] > 0 and 0 <= n["guessed_true"] <= n["true_bugs"]
               for n in notes.values())
    assert all(r["best_f1"] >= r["f1"] for r in summary["results"])  # the oracle threshold is never worse
    assert all(0.0 <= r["f1"] <= 1.0 and r["tp"] + r["fn"] > 0 for r in summary["results"])
    assert summary["data"]["bugs"]["test"]["fppc"] > 0
    # event level: every run counts the test split's episodes as the data notes do (one definition)
    assert all(r["episodes"] == summary["data"]["episodes"]["test"]["fppc"] > 0 for r in summary["results"])
    assert all(0.0 <= r["episode_recall"] <= 1.0 and 0.0 <= r["episode_recall_at_fa_budget"] <= 1.0
               and r["false_alarms_per_1k"] >= 0.0 for r in summary["results"])
    assert all("episode_recall_at_fa_budget_std" in a for a in summary["aggregate"])
    assert summary["detector_model"] == "compact_cnn_viewmodel"  # auto, resolved for FPPC alone
    # the saved test scores replay the run exactly, and windows over consecutive frames are measured on them
    from bugdet.bench.quality.command import write_test_scores
    from bugdet.bench.quality.window import window_metrics

    write_test_scores(tmp_path / "q.scores.npz", bench)
    windows = window_metrics(tmp_path / "q.scores.npz", windows=((1, 1), (3, 2)))
    assert len(windows["results"]) == 2 * len(summary["results"])
    plain = {(r["method"], r["labeled_bugs"]): r["pr_auc"] for r in windows["results"] if r["window"] == "1/1"}
    assert plain == pytest.approx({(r["method"], r["labeled_bugs"]): r["pr_auc"] for r in summary["results"]})


def test_every_split_spreads_its_frames_over_sessions_that_cover_every_weapon() -> None:
    from bugdet.bench.quality.protocol import QualitySettings, session_specs
    from bugdet.playtest.split import split_for_seed
    from bugdet.playtest.viewmodel import WEAPONS

    s = QualitySettings.quick()
    specs = session_specs(s)
    assert len({x.name for x in specs}) == len(specs) == 4 * len(s.scenes) * s.sessions_per_split
    for split, total in (("train", s.unlabeled_frames), ("labelpool", s.label_pool_frames),
                         ("val", s.val_frames), ("test", s.test_frames)):
        for scene in s.scenes:
            mine = [x for x in specs if x.split == split and x.scene == scene]
            assert sum(x.frames for x in mine) == total
            assert {x.weapon for x in mine} == set(WEAPONS)
            # the playtest world's split rule: labelpool sessions are train seeds
            assert {split_for_seed(x.seed) for x in mine} == {"train" if split == "labelpool" else split}


def test_mask_bank_frames_are_a_fixed_spread_of_the_pool() -> None:
    from types import SimpleNamespace

    from bugdet.bench.quality.protocol import segment_frame_ids

    rows = [SimpleNamespace(id=100 + i) for i in range(50)]
    picked = segment_frame_ids(rows, 5)
    assert picked == [100, 112, 124, 137, 149] and picked == segment_frame_ids(rows, 5)
    assert segment_frame_ids(rows, 80) == [r.id for r in rows]
    assert segment_frame_ids(rows, 0) == [] and segment_frame_ids([], 5) == []


def test_episodes_are_runs_of_bug_frames_within_one_capture() -> None:
    from types import SimpleNamespace

    from bugdet.bench.quality.protocol import count_episodes

    def row(source: int, index: int, bug: bool) -> SimpleNamespace:
        return SimpleNamespace(source_id=source, source_index=index, ground_truth={"fppc": {"present": bug}})

    pattern = [0, 1, 1, 0, 1, 0, 0, 1]  # three runs in capture 1
    rows = [row(1, i, bool(b)) for i, b in enumerate(pattern)]
    rows += [row(2, 0, True), row(2, 1, True)]  # one run in capture 2, even though capture 1 ended on a bug
    assert count_episodes(rows[::-1], "fppc") == 4  # order of the rows does not matter
    assert count_episodes(rows, "z_fighting") == 0
    # a frame the ingest skipped (stride, near duplicate) does not split an episode
    assert count_episodes([row(3, 0, True), row(3, 2, True), row(3, 4, False), row(3, 6, True)], "fppc") == 2


def test_a_changed_data_layout_gets_its_own_bench_project() -> None:
    from bugdet.bench.quality.protocol import QualitySettings, data_key

    quick = QualitySettings.quick()
    assert data_key(quick) == data_key(QualitySettings.quick())
    assert data_key(quick) != data_key(QualitySettings.quick().__class__(**{**quick.__dict__, "test_frames": 1200}))
    assert data_key(quick) != data_key(QualitySettings())
    # training settings do not touch the data: the same project serves them
    assert data_key(quick) == data_key(QualitySettings(**{**quick.__dict__, "epochs": 3, "seeds": [5]}))


def test_a_runs_initial_weights_depend_on_its_seed_not_on_earlier_runs() -> None:
    import torch

    from bugdet.detect.model import create_detector

    first = create_detector("compact_cnn", ["fppc"], seed=3).state_dict()
    torch.randn(1000)  # an earlier run used the global generator
    again = create_detector("compact_cnn", ["fppc"], seed=3).state_dict()
    assert all(torch.equal(first[k], again[k]) for k in first)
    other = create_detector("compact_cnn", ["fppc"], seed=4).state_dict()
    assert not torch.equal(first["cam.weight"], other["cam.weight"])


def test_quick_bench_runs_the_methods_the_targets_compare() -> None:
    from bugdet.bench.quality.protocol import QualitySettings

    quick = QualitySettings.quick()
    assert {"supervised", "objective", "pretrain_finetune"} <= set(quick.methods) and "multitask" not in quick.methods
    assert {0, 10, 25} <= set(quick.ks)
    assert "multitask" in QualitySettings().methods


@pytest.mark.parametrize("args, message", [(["--methods", "supervised,magic"], "magic"),
                                           (["--pseudo-max-share", "0"], "--pseudo-max-share"),
                                           (["--pseudo-max-share", "1.5"], "--pseudo-max-share")])
def test_bench_quality_refuses_bad_options_in_one_line(tmp_path, capsys, args, message) -> None:
    from bugdet.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["bench", "quality", "--quick", *args, "--workdir", str(tmp_path / "w"), "--json", str(tmp_path / "q.json")])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and message in err and "\n" not in err
    assert not (tmp_path / "w").exists() and not (tmp_path / "q.json").exists()


def test_labels_cannot_be_drawn_from_a_pool_without_bugs() -> None:
    """Captures whose label pool caught no bug episode stop with a clear error, not a trainer's."""
    from bugdet.detect.data import LabeledFrame
    from bugdet.bench.quality.protocol import BenchData, draw_labels
    from bugdet.errors import InputError

    goods = [LabeledFrame(np.zeros((4, 4, 3), np.uint8), np.zeros(1, np.float32), np.ones(1, bool), i) for i in range(6)]
    data = BenchData(None, [], [], goods, [], [], [], [], [])
    assert len(draw_labels(data, ["fppc"], 0, 3, seed=0)) == 3  # k = 0 needs no bug frames
    with pytest.raises(InputError, match="no fppc frames to label"):
        draw_labels(data, ["fppc"], 10, 3, seed=0)


def test_realism_bench_summarises_verdicts_per_type_over_seeds() -> None:
    from bugdet.bench.quality.realism import per_type

    rows = [{"bug_type": "fppc", "shift": s, "t_statistic": t, "progress": p, "separation": 0.5, "verdict": v,
             "resembles": v == "resembles"}
            for s, t, p, v in ((0.01, 3.0, 0.2, "resembles"), (-0.01, -1.0, -0.1, "does not resemble"),
                               (0.0, 0.0, float("nan"), "cannot tell"))]
    (row,) = per_type(rows)
    assert row["bug_type"] == "fppc" and row["shift"] == pytest.approx(0.0)
    assert row["resembles_share"] == pytest.approx(1 / 3) and row["cannot_tell_share"] == pytest.approx(1 / 3)
    assert row["t_statistic"] == pytest.approx(2 / 3)
