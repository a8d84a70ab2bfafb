"""Capture ingest: videos, frame folders, capture sessions, corruption, dedupe, resume."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from bugdet.errors import InputError
from bugdet.imageio import pixel_sha256, read_mask, read_rgb
from bugdet.ingest.ingester import ingest
from bugdet.ingest.session_format import BugTruth, FrameEntry, Pose, SessionInfo, SessionWriter
from bugdet.project import Project
from bugdet.store.frames import count_frames, iter_frames
from conftest import moving_frames, write_video


def stored_frames(project: Project):
    return list(iter_frames(project.connect()))


@pytest.mark.parametrize("suffix", [".mp4", ".avi"])
def test_video_frames_are_stored_in_order(project: Project, tmp_path: Path, suffix: str) -> None:
    video = write_video(tmp_path / f"clip{suffix}", moving_frames(20), fps=10)
    report = ingest(project, [video])
    assert report.frames_added == 20 and report.sources[0].status == "added"
    frames = stored_frames(project)
    assert [f.source_index for f in frames] == list(range(20))
    assert frames[5].timestamp == pytest.approx(0.5)
    image = read_rgb(project.root / frames[3].path)
    assert image.shape == (120, 160, 3) and pixel_sha256(image) == frames[3].sha256


def test_frame_folder_in_natural_order_with_png_and_jpeg(project: Project, tmp_path: Path) -> None:
    folder = tmp_path / "shots"
    folder.mkdir()
    for i, f in enumerate(moving_frames(12)):
        ext = ".jpg" if i % 2 else ".png"
        cv2.imwrite(str(folder / f"frame{i}{ext}"), cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    (folder / "notes.txt").write_text("not a frame")
    report = ingest(project, [folder])
    assert report.frames_added == 12
    frames = stored_frames(project)
    assert [f.source_index for f in frames] == list(range(12))  # frame10 after frame9, not after frame1
    png = read_rgb(project.root / frames[0].path)
    assert np.array_equal(png, moving_frames(12)[0])  # lossless for PNG input


def test_same_capture_twice_or_copied_adds_nothing(project: Project, tmp_path: Path) -> None:
    video = write_video(tmp_path / "clip.mp4", moving_frames(15))
    assert ingest(project, [video]).frames_added == 15
    again = ingest(project, [video])
    assert again.frames_added == 0 and again.sources[0].status == "already-ingested"
    copy = shutil.copy(video, tmp_path / "renamed.mp4")
    assert ingest(project, [Path(copy)]).frames_added == 0
    # A folder holding the same frames as PNG: new source, but every frame's content is known.
    folder = tmp_path / "same"
    folder.mkdir()
    for i, f in enumerate(stored_frames(project)):
        shutil.copy(project.root / f.path, folder / f"{i:03d}.png")
    rep = ingest(project, [folder])
    assert rep.frames_added == 0 and rep.sources[0].frames_existing == 15
    assert count_frames(project.connect()) == 15


def test_corrupt_video_is_reported_and_other_captures_still_ingest(project: Project, tmp_path: Path) -> None:
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(2000))
    good = write_video(tmp_path / "good.mp4", moving_frames(8))
    report = ingest(project, [bad, good])
    by_path = {Path(s.path).name: s for s in report.sources}
    assert by_path["bad.mp4"].status == "failed" and "unreadable video" in by_path["bad.mp4"].problems[-1]
    assert by_path["good.mp4"].frames_added == 8


def test_truncated_video_keeps_decoded_frames_and_says_so(project: Project, tmp_path: Path) -> None:
    video = write_video(tmp_path / "full.avi", moving_frames(40))
    data = video.read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) // 2])
    report = ingest(project, [cut])
    src = report.sources[0]
    assert src.status == "added" and 0 < src.frames_added < 40
    assert any("truncated" in p for p in src.problems)


def test_corrupt_image_in_folder_is_skipped_and_reported(project: Project, tmp_path: Path) -> None:
    folder = tmp_path / "shots"
    folder.mkdir()
    for i, f in enumerate(moving_frames(5)):
        cv2.imwrite(str(folder / f"{i}.png"), cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    (folder / "2.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    report = ingest(project, [folder])
    assert report.frames_added == 4
    assert any("2.png: unreadable image" in p for p in report.sources[0].problems)


def test_missing_path_is_a_clear_error_and_stores_nothing(project: Project, tmp_path: Path) -> None:
    video = write_video(tmp_path / "clip.mp4", moving_frames(5))
    with pytest.raises(InputError, match="nope.mp4: no such file"):
        ingest(project, [video, tmp_path / "nope.mp4"])
    assert count_frames(project.connect()) == 0


def test_stride_time_sampling_and_near_duplicates(tmp_path: Path) -> None:
    frames = moving_frames(30)
    video = write_video(tmp_path / "clip.mp4", frames, fps=10)
    p1 = Project.open(tmp_path / "a", ["ingest.stride=3"], create=True)
    ingest(p1, [video])
    assert [f.source_index for f in stored_frames(p1)] == list(range(0, 30, 3))
    p2 = Project.open(tmp_path / "b", ["ingest.every_seconds=0.5", "ingest.max_frames=4"], create=True)
    ingest(p2, [video])
    assert [f.source_index for f in stored_frames(p2)] == [0, 5, 10, 15]
    # A static capture: every frame after the first is a near duplicate.
    still = write_video(tmp_path / "still.mp4", [frames[0]] * 3 + [frames[20]] * 3, fps=10)
    p3 = Project.open(tmp_path / "c", ["ingest.near_duplicate.enabled=true"], create=True)
    rep = ingest(p3, [still])
    assert rep.frames_added == 2 and rep.sources[0].near_duplicates == 4


def make_session(root: Path, n: int = 6) -> Path:
    info = SessionInfo(session_id="s1", seed=7, scene="park", width=160, height=120, fps=20,
                       bug_types=["fppc"], split="train", objects={"1": {"name": "rock-1", "category": "rock"},
                                                                    "2": {"name": "tree-1", "category": "tree"}})
    with SessionWriter(root, info) as writer:
        for i, rgb in enumerate(moving_frames(n)):
            bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
            ids = np.zeros((120, 160), np.uint16)
            ids[10:40, 10:40] = 1
            mask = np.zeros((120, 160), bool)
            mask[90:110, 120:150] = True
            bug = i == 3
            entry = FrameEntry(
                index=i, time=i / 20, file=writer.write_frame_image(i, bgr), scene="park",
                pose=Pose(x=float(i), y=2.0, z=1.7, h=90.0), fov=75.0, weapon="rifle",
                ids=writer.write_ids(i, ids), weapon_mask=writer.write_mask(i, "weapon", mask),
                bugs={"fppc": BugTruth(present=bug, severity=0.4 if bug else 0.0,
                                       mask=writer.write_mask(i, "fppc", mask) if bug else None)},
            )
            writer.append(entry)
    return root


def test_capture_session_brings_pose_and_ground_truth(project: Project, tmp_path: Path) -> None:
    session = make_session(tmp_path / "session")
    report = ingest(project, [session])
    assert report.frames_added == 6
    frames = stored_frames(project)
    f3 = frames[3]
    assert f3.scene == "park" and f3.split == "train" and f3.fov == 75.0
    assert f3.pose == {"x": 3.0, "y": 2.0, "z": 1.7, "h": 90.0, "p": 0.0, "r": 0.0}
    assert f3.is_bug("fppc") is True and frames[2].is_bug("fppc") is False
    assert f3.ground_truth["fppc"]["severity"] == pytest.approx(0.4)
    mask = read_mask(project.root / f3.ground_truth["fppc"]["mask"])
    assert mask.sum() == 20 * 30 and mask[100, 130]
    assert f3.aux["weapon"] == "rifle" and read_mask(project.root / f3.aux["weapon_mask"]).sum() == 600
    assert f3.aux["objects"] == {"1": {"name": "rock-1", "category": "rock"}}  # only IDs this frame shows
    # The stored files are the project's own copies: deleting the session loses nothing.
    shutil.rmtree(session)
    assert read_mask(project.root / f3.ground_truth["fppc"]["mask"]).any()


def test_torn_session_line_is_skipped_and_reported(project: Project, tmp_path: Path) -> None:
    session = make_session(tmp_path / "session")
    with open(session / "frames.jsonl", "a") as fh:
        fh.write('{"index": 6, "time": 0.3, "fi')
    report = ingest(project, [session])
    assert report.frames_added == 6
    assert any("skipped unreadable frame entry" in p for p in report.sources[0].problems)


INGEST_SCRIPT = """
import sys
from pathlib import Path
from bugdet.ingest.ingester import ingest
from bugdet.project import Project
ingest(Project.open(Path(sys.argv[1]), ["ingest.commit_every=4"]), [Path(sys.argv[2])])
"""


def test_interrupted_ingest_resumes_without_losing_or_duplicating(project: Project, tmp_path: Path) -> None:
    total = 400
    video = write_video(tmp_path / "long.avi", moving_frames(total, width=320, height=240))
    proc = subprocess.Popen([sys.executable, "-c", INGEST_SCRIPT, str(project.root), str(video)])
    seen = 0
    deadline = time.time() + 60
    while time.time() < deadline and proc.poll() is None:
        try:
            seen = sqlite3.connect(project.db_path).execute("SELECT COUNT(*) FROM frames").fetchone()[0]
        except sqlite3.OperationalError:
            seen = 0
        if seen >= 8:
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    conn = project.connect()
    at_kill = count_frames(conn)
    assert 8 <= at_kill < total, "the ingest must be killed mid-way for this test to mean anything"
    status = conn.execute("SELECT status FROM sources").fetchone()["status"]
    assert status == "ingesting"
    for f in iter_frames(conn):  # every committed row points at a complete image
        assert read_rgb(project.root / f.path).shape == (240, 320, 3)
    report = ingest(project, [video])
    assert report.sources[0].frames_existing == at_kill
    frames = list(iter_frames(project.connect()))
    assert len(frames) == total == len({f.sha256 for f in frames})
    assert sorted(f.source_index for f in frames) == list(range(total))
    assert project.connect().execute("SELECT status FROM sources").fetchone()["status"] == "complete"
