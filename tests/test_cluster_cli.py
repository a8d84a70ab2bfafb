"""The filtering commands as a user runs them: embed -> refine -> cluster (+ summary) -> weaklabel."""

from __future__ import annotations

import json

import pytest

from bugdet.cli import main
from filter_toydata import add_frames, new_project

VIT_S32 = ["--set", "filter.embed.model=ViT-S-32", "--set", "filter.embed.pretrained=none",
           "--set", "filter.embed.backend=torch"]


def run_ok(capsys, *args: str) -> str:
    main(list(args))
    return capsys.readouterr().err


def run_error(capsys, *args: str) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    assert exit_info.value.code != 0
    err = capsys.readouterr().err
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, err
    return errors[0]


def test_filter_commands_end_to_end(tmp_path, capsys):
    project = new_project(tmp_path / "p")
    shapes = [[("red", "circle"), ("green", "rect")], [("blue", "circle"), ("yellow", "rect")]] * 3
    truth = [{"fppc": {"present": i % 2 == 0, "severity": 1.0, "mask": None}} for i in range(6)]
    add_frames(project, shapes, ground_truth=truth)
    p = ["-p", str(project.root)]

    err = run_ok(capsys, "embed", *p, *VIT_S32, "--frames")
    assert "UNPRETRAINED" in err and "masks: embedded 12 new" in err and "frames: embedded 6 new" in err
    err = run_ok(capsys, "refine", *p, *VIT_S32, "--reject", "tree, grass", "--threshold", "0.999", "--who", "ana")
    assert "reject prompts ['tree', 'grass'] >= 0.999 by ana" in err
    err = run_ok(capsys, "cluster", *p, *VIT_S32, "--k", "2", "--set", "filter.cluster.dedupe_similarity=null")
    assert "bank keeps" in err and "UNPRETRAINED" in err
    bank = json.loads((project.root / "bank" / "bank.json").read_text())
    assert bank["pretrained"] is False and len(bank["clusters"]) == 2 and bank["masks"]
    assert (project.root / "clusters" / f"run-{bank['run_id']}" / "index.html").is_file()
    run_ok(capsys, "refine", *p, "--reject-cluster", "1", "--who", "ben")
    listing = run_ok(capsys, "refine", *p, "--list")
    assert "reject prompts" in listing and "reject cluster 1 of run 1 by ben" in listing
    run_ok(capsys, "summary", *p)

    out = tmp_path / "weak.json"
    err = run_ok(capsys, "weaklabel", *p, *VIT_S32, "--sample-ground-truth", "1", "--good", "1", "--json", str(out))
    report = json.loads(out.read_text())
    assert report["exemplars"] == 2 and report["unlabeled"] == 4 and report["pretrained"] is False
    assert 0.0 <= report["coverage"] <= 1.0 and "weak-label run" in err


def test_filter_commands_fail_with_one_clear_line(tmp_path, capsys):
    project = new_project(tmp_path / "p")
    p = ["-p", str(project.root)]
    assert "unknown open_clip model 'ViT-Nope'" in run_error(
        capsys, "embed", *p, "--set", "filter.embed.model=ViT-Nope", "--set", "filter.embed.pretrained=none")
    assert "checkpoint file" in run_error(
        capsys, "embed", *p, "--set", "filter.embed.model=ViT-S-32", "--set", f"filter.embed.pretrained={tmp_path}/no.pt")
    assert "no embeddings for the configured model" in run_error(capsys, "cluster", *p, *VIT_S32)
    assert "no clustering run" in run_error(capsys, "summary", *p)
    assert "no labeled frames" in run_error(capsys, "weaklabel", *p, *VIT_S32)
