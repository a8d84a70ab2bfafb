"""``bugdet playtest`` commands end to end: record, contact sheet, user errors."""

from __future__ import annotations

import json

import cv2
import pytest

from bugdet.cli import main
from bugdet.ingest.session_format import SessionReader


def test_record_writes_a_readable_session(tmp_path):
    out = tmp_path / "session"
    main(["playtest", "record", str(out), "--scene", "park", "--seed", "200123", "--frames", "120", "--width", "80",
          "--height", "60", "--prevalence", "0.05", "--bugs", "fppc,floating_object", "--jpeg"])
    reader = SessionReader.open(out)
    assert reader.info.split == "test" and reader.info.scene == "park"
    assert reader.info.generator["variant"] in ("summer", "dry", "autumn")
    frames = list(reader.frames())
    assert len(frames) == 120 and frames[0].file.endswith(".jpg")
    bug_frames = sum(f.is_bug for f in frames)
    assert 4 <= bug_frames <= 6  # 5% of 120, steering permitting
    assert reader.info.generator["bug_frames"] == bug_frames
    assert json.loads((out / "session.json").read_text())["status"] == "complete"


def test_same_seed_same_bytes_on_disk(tmp_path):
    args = ["--scene", "indoor", "--seed", "7", "--frames", "12", "--width", "64", "--height", "48", "--prevalence", "0.2", "--bugs", "all"]
    main(["playtest", "record", str(tmp_path / "a"), *args])
    main(["playtest", "record", str(tmp_path / "b"), *args])
    for name in ("session.json", "frames.jsonl"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    for path in sorted((tmp_path / "a").rglob("*.png")):
        assert path.read_bytes() == (tmp_path / "b" / path.relative_to(tmp_path / "a")).read_bytes()


def test_contact_sheet_shows_bug_and_correct_render(tmp_path):
    out = tmp_path / "sheet.png"
    main(["playtest", "contact-sheet", str(out), "--scene", "indoor", "--seed", "3", "--frames", "200", "--width", "80",
          "--height", "60", "--prevalence", "0.1", "--bugs", "fppc,missing_texture"])
    sheet = cv2.imread(str(out))
    assert sheet is not None and sheet.shape[1] == 3 * 80 and sheet.shape[0] >= 3 * 60


@pytest.mark.parametrize("args", [
    ["--bugs", "wobble", "--prevalence", "0.1"],
    ["--scene", "moon"],
    ["--prevalence", "0.2"],
    ["--variant", "autumn", "--scene", "indoor"],
])
def test_user_errors_exit_with_one_line(tmp_path, capsys, args):
    with pytest.raises(SystemExit) as exc:
        main(["playtest", "record", str(tmp_path / "s"), "--frames", "2", *args])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err
