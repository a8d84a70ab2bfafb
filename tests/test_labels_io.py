"""Labels files in and out, frames named by file or hash, retraction, and the duplicate-split rule."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bugdet.cli import main
from bugdet.errors import InputError
from bugdet.imageio import write_rgb
from bugdet.ingest.ingester import ingest
from bugdet.project import Project
from bugdet.store.frames import iter_frames
from bugdet.store.labels import current_label_rows, current_labels, ensure_labels_schema
from bugdet.store.labels_io import import_labels
from bugdet.store.resolve import FrameIndex, FrameRefError
from conftest import moving_frames

BUG_TYPES = ["fppc", "missing_texture"]


def cli(capsys, *args: str) -> tuple[int, str]:
    """Run the CLI in-process as a user would; (exit code, stderr)."""
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    return code, capsys.readouterr().err


def write_folder(folder: Path, frames, start: int = 0) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, rgb in enumerate(frames, start=start):
        paths.append(folder / f"shot_{i:04d}.png")
        write_rgb(paths[-1], rgb)
    return paths


@pytest.fixture
def game(tmp_path: Path) -> tuple[Project, Path]:
    """A project holding a studio's plain frame folders: train (8 frames) and val (4 frames)."""
    frames = moving_frames(12)
    shots = tmp_path / "shots"
    write_folder(shots / "train", frames[:8])
    write_folder(shots / "val", frames[8:], start=8)
    project = Project.init(tmp_path / "proj")
    ingest(project, [shots / "train"], split="train")
    ingest(project, [shots / "val"], split="val")
    return project, shots


def write_csv(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(["frame,label,split,box", *lines]) + "\n", encoding="utf-8")
    return path


def label_rows(project: Project) -> int:
    conn = project.connect()
    try:
        ensure_labels_schema(conn)
        return conn.execute("SELECT COUNT(*) FROM frame_labels").fetchone()[0]
    finally:
        conn.close()


def test_frames_resolve_by_name_path_and_hash(game) -> None:
    project, shots = game
    conn = project.connect()
    index = FrameIndex.of(conn)
    frame = index.resolve("shot_0003.png")
    assert frame.split == "train"
    assert index.resolve("train/shot_0003.png").id == frame.id
    assert index.resolve(str((shots / "train" / "shot_0003.png").resolve())).id == frame.id
    assert index.resolve(frame.sha256).id == frame.id
    assert index.resolve(frame.sha256[:10]).id == frame.id
    assert index.resolve(str(frame.id)).id == frame.id
    with pytest.raises(FrameRefError, match="no such frame"):
        index.resolve("shot_9999.png")


def test_import_export_round_trip_with_boxes_and_splits(game, tmp_path: Path, capsys) -> None:
    project, shots = game
    conn = project.connect()
    sha = FrameIndex.of(conn).resolve("shot_0005.png").sha256
    labels = write_csv(tmp_path / "labels.csv", [
        'shot_0001.png,fppc,,"100,60,150,110"',
        "train/shot_0002.png,good,,",
        f"{sha},missing_texture,,",
        "shot_0008.png,fppc,val,",
        "shot_0009.png,good,test,",  # moves a val frame to test
    ])
    code, err = cli(capsys, "label", "import", str(labels), "-p", str(project.root))
    assert code == 0, err
    assert "4 labels added" in err or "5 labels added" in err
    judged = current_labels(conn)
    by_name = FrameIndex.of(conn)
    assert judged[by_name.resolve("shot_0001.png").id] == {"fppc": 1}
    assert judged[by_name.resolve("shot_0002.png").id] == {"good": 1}
    assert judged[by_name.resolve("shot_0005.png").id] == {"missing_texture": 1}
    boxes = {r["frame_id"]: r["box"] for r in current_label_rows(conn)}
    assert json.loads(boxes[by_name.resolve("shot_0001.png").id]) == [100, 60, 150, 110]
    assert by_name.resolve("shot_0009.png").split == "test"

    exported = tmp_path / "out.csv"
    code, err = cli(capsys, "label", "export", str(exported), "-p", str(project.root))
    assert code == 0, err
    text = exported.read_text()
    assert "shots/train/shot_0001.png,fppc,train,\"100,60,150,110\"" in text.replace(str(tmp_path) + "/", "")
    # Importing the export again changes nothing; into a fresh project it gives the same labels.
    before = label_rows(project)
    code, err = cli(capsys, "label", "import", str(exported), "-p", str(project.root))
    assert code == 0 and "0 labels added" in err and "5 unchanged" in err, err
    assert label_rows(project) == before
    other = Project.init(tmp_path / "other")
    ingest(other, [shots / "train"], split="train")
    ingest(other, [shots / "val"], split="val")
    code, err = cli(capsys, "label", "import", str(exported), "-p", str(other.root))
    assert code == 0, err
    again = tmp_path / "again.csv"
    assert cli(capsys, "label", "export", str(again), "-p", str(other.root))[0] == 0
    assert again.read_text() == text


def test_json_lines_import(game, tmp_path: Path) -> None:
    project, _ = game
    path = tmp_path / "labels.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in [
        {"frame": "shot_0004.png", "label": "fppc", "box": [0, 0, 20, 20], "note": "gun over wall"},
        {"frame": "shot_0006.png", "label": "good"},
    ]) + "\n")
    conn = project.connect()
    report = import_labels(conn, path, BUG_TYPES)
    assert report.added == 2 and report.ignored_columns == ["note"]
    assert sorted(t for v in current_labels(conn).values() for t in v) == ["fppc", "good"]


def test_bad_rows_fail_the_whole_file_with_line_numbers(game, tmp_path: Path, capsys) -> None:
    project, shots = game
    # the same file name in another folder makes "shot_0001.png" ambiguous
    write_folder(shots / "extra", moving_frames(3, seed=7), start=1)
    ingest(project, [shots / "extra"], split="train")
    labels = write_csv(tmp_path / "bad.csv", [
        "train/shot_0002.png,fppc,,",          # line 2: fine
        "shot_0099.png,fppc,,",                # line 3: unknown frame
        "train/shot_0003.png,fpcc,,",          # line 4: unknown bug type
        'train/shot_0004.png,fppc,,"1,2,3"',   # line 5: malformed box
        "shot_0001.png,good,,",                # line 6: ambiguous
    ])
    before = label_rows(project)
    code, err = cli(capsys, "label", "import", str(labels), "-p", str(project.root))
    assert code == 2
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in err, err
    assert "line 3" in errors[0] and "line 4" in errors[0] and "line 5" in errors[0] and "and 1 more" in errors[0]
    assert "fpcc" in errors[0]
    assert label_rows(project) == before == 0
    conn = project.connect()
    with pytest.raises(InputError, match="line 2: .*ambiguous"):
        import_labels(conn, write_csv(tmp_path / "amb.csv", ["shot_0001.png,good,,"]), BUG_TYPES)
    with pytest.raises(InputError, match="labeled both good and a bug"):
        import_labels(conn, write_csv(tmp_path / "both.csv", ["train/shot_0002.png,good,,", "train/shot_0002.png,fppc,,"]),
                      BUG_TYPES)
    with pytest.raises(InputError, match="header needs columns frame, label"):
        (tmp_path / "nohead.csv").write_text("file,kind\na.png,fppc\n")
        import_labels(conn, tmp_path / "nohead.csv", BUG_TYPES)
    assert label_rows(project) == 0


def test_retract_and_none_remove_labels_and_keep_history(game, tmp_path: Path, capsys) -> None:
    project, _ = game
    root = str(project.root)
    assert cli(capsys, "label", "-p", root, "--frame", "shot_0001.png", "--frame", "shot_0002.png", "--bug", "fppc")[0] == 0
    assert cli(capsys, "label", "-p", root, "--frame", "shot_0003.png", "--good")[0] == 0
    code, err = cli(capsys, "label", "-p", root, "--frame", "shot_0001.png", "--bug", "fppc", "--retract")
    assert code == 0 and "removed 1" in err, err
    conn = project.connect()
    index = FrameIndex.of(conn)
    judged = current_labels(conn)
    assert index.resolve("shot_0001.png").id not in judged  # removed, not a recorded "no"
    assert judged[index.resolve("shot_0002.png").id] == {"fppc": 1}
    assert label_rows(project) == 4  # the retraction is a row of its own: history kept
    # `none` in a labels file removes every label of the frame; a bug label replaces `good`
    import_labels(conn, write_csv(tmp_path / "l.csv", ["shot_0002.png,none,,", "shot_0003.png,missing_texture,,"]), BUG_TYPES)
    judged = current_labels(conn)
    assert index.resolve("shot_0002.png").id not in judged
    assert judged[index.resolve("shot_0003.png").id] == {"missing_texture": 1}
    code, err = cli(capsys, "label", "-p", root, "--frame", "nope.png", "--good")
    assert code == 2 and "nope.png" in err


def test_identical_frame_in_a_second_split_is_reported_and_keeps_its_first_split(tmp_path: Path, capsys) -> None:
    frames = moving_frames(6)
    write_folder(tmp_path / "train", frames[:4])
    test_dir = tmp_path / "test"
    write_folder(test_dir, frames[2:6], start=10)  # shot_0010/0011 repeat train's frames 2 and 3
    project = Project.init(tmp_path / "proj")
    ingest(project, [tmp_path / "train"], split="train")
    code, err = cli(capsys, "ingest", str(test_dir), "-p", str(project.root), "--split", "test")
    assert code == 0, err
    assert "2 frames are identical to frames already stored in another split and keep their first split" in err
    assert "shot_0010.png (kept in train)" in err
    conn = project.connect()
    assert sorted(f.split for f in iter_frames(conn)) == ["test", "test", "train", "train", "train", "train"]
    # the duplicate's file still names the (train) frame, so a labels file may use it
    assert FrameIndex.of(conn).resolve("test/shot_0010.png").split == "train"
