"""End to end in a real headless browser: `bugdet review` runs as its own process, Debian's chromium
(driven by Playwright) plays a QA tester, and the decisions are checked in the database.

Screenshots of each main view are saved under the test's tmp dir and copied to
``runs/test-artifacts/review/`` (gitignored) for people to look at.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, sync_playwright

from bugdet.augment.loaders import prompt_weapon_masks
from bugdet.refine.decisions import list_decisions, mask_status
from bugdet.review.flags import list_flags
from bugdet.store.labels import current_labels
from review_project import shared_review_project

ARTIFACTS = Path(__file__).resolve().parents[1] / "runs" / "test-artifacts" / "review"
TOKEN = "qa-token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`bugdet review` as a real subprocess on a free port."""

    def __init__(self, project_root: Path, log: Path, token: str | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}
        args = [sys.executable, "-m", "bugdet", "review", "--project", str(project_root), "--port", str(self.port)]
        if token:
            args += ["--token", token]
        self.log = log
        self.proc = subprocess.Popen(args, stdout=log.open("w"), stderr=subprocess.STDOUT,
                                     env={**os.environ, "HF_HUB_OFFLINE": "1"})
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"review server exited: {log.read_text()}")
            try:
                if httpx.get(f"{self.url}/api/info", headers=self.headers, timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.2)
        raise RuntimeError(f"review server did not come up: {log.read_text()}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    return shared_review_project(tmp_path_factory, "review-browser")[0]


@pytest.fixture(scope="module")
def server(project, tmp_path_factory):
    """One server process for the module; the SIGKILL test (last) kills it, saving a second start."""
    running = Server(project.root, tmp_path_factory.mktemp("server") / "server.log", token=TOKEN)
    yield running
    running.stop()


@pytest.fixture()
def browser_page(tmp_path):
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium") or "/usr/bin/chromium",
                                    args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        # bypass_csp: the page forbids eval, which Playwright's wait_for_function uses to poll the test's predicates
        page = browser.new_page(viewport={"width": 1280, "height": 900}, bypass_csp=True)
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
        try:
            yield page, errors
        finally:
            browser.close()


def snap(page: Page, out: Path, name: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(path, ARTIFACTS / path.name)


def open_view(page: Page, view: str) -> None:
    page.click(f"nav .tab[data-view={view}]")
    page.wait_for_selector(f"#view-{view}:not(.hidden)")


def test_tester_scenario_in_a_real_browser(project, server, browser_page, tmp_path):
    page, errors = browser_page
    shots = tmp_path / "screenshots"
    page.goto(f"{server.url}/?token={TOKEN}")  # the link `bugdet review` prints; the cookie takes over
    page.wait_for_selector("body[data-ready='1']")
    assert "token" not in page.url
    assert "UNPRETRAINED" in page.inner_text("#model-banner")
    page.fill("#who", "ana")

    # Cluster gallery: reject a whole cluster in one click, open another to see its masks.
    page.wait_for_selector(".card.cluster")
    page.click(".card.cluster[data-cluster='0'] button.reject")
    page.wait_for_selector(".card.cluster[data-cluster='0'] .badge.reject")
    page.click(".card.cluster[data-cluster='1'] button.secondary")
    page.wait_for_selector("#cluster-masks .tile")
    snap(page, shots, "1-clusters")

    # Embedding map: click a dot, see its mask.
    open_view(page, "map")
    page.wait_for_function("state.map !== null && state.map.points.length > 0")
    point = page.evaluate("(() => { const p = state.map.points[0]; const [x, y] = mapXY(p); "
                          "const c = document.querySelector('#map-canvas').getBoundingClientRect(); "
                          "return [c.left + x * c.width / 720, c.top + y * c.height / 540, p.mask_id]; })()")
    page.mouse.click(point[0], point[1])
    page.wait_for_selector("#map-side img.overlay")
    assert f"Mask {point[2]}" in page.inner_text("#map-side")
    snap(page, shots, "2-map")

    # Text prompt: search, keep only the top three results selected, reject them.
    open_view(page, "text")
    page.fill("#text-prompt", "tree")
    page.click("#text-search")
    page.wait_for_selector("#text-results .tile")
    page.click("#text-select-none")
    boxes = page.locator("#text-results input[type=checkbox]")
    top3 = [int(boxes.nth(i).get_attribute("data-mask")) for i in range(3)]
    for i in range(3):
        boxes.nth(i).check()
    assert page.inner_text("#text-reject") == "Reject selected (3)"
    page.click("#text-reject")
    page.wait_for_function("document.querySelector('#message').innerText.includes('Rejected 3 masks')")
    page.wait_for_function("document.querySelectorAll('#text-results .badge.reject').length >= 3")
    snap(page, shots, "3-text-prompt")

    # Geometry prompt: drag a box around the weapon, preview, save it as the weapon mask.
    page.evaluate("state.framePageSize = 3")  # small pages, so this project's frames span several
    open_view(page, "draw")
    page.wait_for_function("state.frames.length > 0 && state.frameImage !== undefined")
    frames_total = int(page.evaluate("state.framesTotal"))
    assert frames_total > 3 and page.inner_text("#frames-page") == f"frames 1-3 of {frames_total}"
    page.check("input[name=draw-mode][value=box]")
    canvas = page.locator("#draw-canvas").bounding_box()
    frame_id = int(page.evaluate("state.frames[state.frameIndex].frame_id"))
    page.mouse.move(canvas["x"] + canvas["width"] * 0.40, canvas["y"] + canvas["height"] * 0.55)
    page.mouse.down()
    page.mouse.move(canvas["x"] + canvas["width"] * 0.80, canvas["y"] + canvas["height"] * 0.98, steps=5)
    page.mouse.up()
    page.wait_for_selector("#draw-save-weapon:not([disabled])")
    assert "Mask preview" in page.inner_text("#draw-info")
    snap(page, shots, "4-draw-preview")
    page.click("#draw-save-weapon")
    page.wait_for_function("document.querySelector('#draw-saved').innerText.includes('weapon mask')")
    page.click("#frames-next")  # the picker's next page ...
    page.wait_for_function("state.frameOffset === 3 && state.frames.length > 0")
    assert page.inner_text("#frames-page").startswith("frames 4-") and page.is_enabled("#frames-prev")
    page.click("#frame-prev")  # ... and stepping back a frame crosses to the end of the page before
    page.wait_for_function("state.frameOffset === 0 && state.frameIndex === 2")

    # Flag review: confirm the first flag.
    open_view(page, "flags")
    page.wait_for_selector(".card.flag")
    flag_id = int(page.locator(".card.flag").first.get_attribute("data-flag"))
    assert page.locator(".card.flag .flag-box").count() >= 1  # the localisation overlay
    snap(page, shots, "5-flags")
    page.locator(".card.flag").first.locator("button.reject").click()
    page.wait_for_function(f"!document.querySelector(\".card.flag[data-flag='{flag_id}']\")")
    page.evaluate("state.flagPageSize = 2")
    page.click("button[data-status='pending']")
    page.wait_for_function("document.querySelector('#flags-page').innerText === 'flags 1-2 of 4'")
    assert page.locator(".card.flag").count() == 2 and not page.is_enabled("#flags-prev")
    page.click("#flags-next")
    page.wait_for_function("document.querySelector('#flags-page').innerText === 'flags 3-4 of 4'")
    assert not page.is_enabled("#flags-next")

    # Reload: every decision is still there, shown by the page.
    page.reload()
    page.wait_for_selector("body[data-ready='1']")
    open_view(page, "clusters")
    page.wait_for_selector(".card.cluster[data-cluster='0'] .badge.reject")
    open_view(page, "flags")
    page.wait_for_function("document.querySelector(\"button[data-status='confirmed']\").innerText.includes('(1)')")
    open_view(page, "history")
    page.wait_for_selector("#history-table tbody tr")
    history = page.inner_text("#history-table")
    for expected in ("whole cluster 0", "reject 3 selected masks", "saved weapon mask", "confirm detector flag"):
        assert expected in history
    snap(page, shots, "6-history")
    assert not errors, errors

    status = mask_status(project)
    conn = project.connect()
    try:
        members0 = [r[0] for r in conn.execute("SELECT mask_id FROM cluster_members WHERE cluster = 0")]
        flag = next(f for f in list_flags(conn) if f.id == flag_id)
        labels = current_labels(conn)
    finally:
        conn.close()
    assert all(status[m] == "reject" for m in members0 + top3)
    assert flag.status == "confirmed" and flag.reviewed_by == "ana" and labels[flag.frame_id][flag.bug_type] == 1
    assert prompt_weapon_masks(project)[frame_id].meta["prompt"]["who"] == "ana"
    for name in ("1-clusters", "2-map", "3-text-prompt", "4-draw-preview", "5-flags", "6-history"):
        assert (shots / f"{name}.png").stat().st_size > 10_000


def test_frame_filling_click_mask_is_flagged_confirmed_and_its_undo_stays_in_history(project, server, browser_page, tmp_path):
    """Clicks all over the frame make a mask that fills it: the page warns, asks before saving it as
    the weapon mask, and after undo the saved mask's row stays in the history, struck through."""
    page, errors = browser_page
    shots = tmp_path / "screenshots"
    page.goto(f"{server.url}/?token={TOKEN}")
    page.wait_for_selector("body[data-ready='1']")
    page.fill("#who", "ben")
    open_view(page, "draw")
    page.wait_for_function("state.frames.length > 0 && state.frameImage !== undefined")
    frame_id = int(page.evaluate("state.frames[state.frameIndex].frame_id"))
    page.check("input[name=draw-mode][value=pos]")
    canvas = page.locator("#draw-canvas").bounding_box()
    for fx in (0.06, 0.31, 0.56, 0.81, 0.94):
        for fy in (0.08, 0.33, 0.58, 0.83, 0.95):
            page.mouse.click(canvas["x"] + canvas["width"] * fx, canvas["y"] + canvas["height"] * fy)
    page.wait_for_selector("#draw-warning:not(.hidden)")
    assert "of the frame" in page.inner_text("#draw-warning")
    snap(page, shots, "7-draw-frame-filling")
    before = prompt_weapon_masks(project).get(frame_id)

    asked: list[str] = []
    page.once("dialog", lambda dialog: (asked.append(dialog.message), dialog.dismiss()))
    page.click("#draw-save-weapon")
    page.wait_for_function("document.querySelector('#draw-save-weapon') !== null")
    assert asked and "most of the frame" in asked[0]
    after = prompt_weapon_masks(project).get(frame_id)
    assert (after.id if after else None) == (before.id if before else None)  # dismissed: nothing saved

    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#draw-save-weapon")
    page.wait_for_function("document.querySelector('#message').innerText.includes('Saved weapon mask')")
    saved = prompt_weapon_masks(project)[frame_id]
    assert saved.meta["prompt"]["who"] == "ben" and saved.meta["prompt"]["confirmed_frame_filling"] is True

    open_view(page, "history")
    row = f"#history-table tr[data-key='mask:{saved.id}']"
    page.wait_for_selector(row)
    page.locator(f"{row} button").click()
    page.wait_for_selector(f"{row}.revoked")
    assert "undone" in page.inner_text(row) and f"saved weapon mask {saved.id}" in page.inner_text(row)
    snap(page, shots, "8-history-undone-mask")
    assert prompt_weapon_masks(project).get(frame_id) is None or prompt_weapon_masks(project)[frame_id].id != saved.id
    assert not errors, errors


def test_sigkill_during_a_burst_loses_no_acknowledged_decision(project, server):
    conn = project.connect()
    try:
        mask_ids = [r[0] for r in conn.execute("SELECT id FROM masks ORDER BY id")]
    finally:
        conn.close()
    acknowledged: list[tuple[int, int, str]] = []  # (decision id, mask id, who)
    lock = threading.Lock()
    stop = threading.Event()

    def burst(worker: int) -> None:
        who = f"burst-{worker}"
        with httpx.Client(timeout=30, headers=server.headers) as client:
            i = 0
            while not stop.is_set():
                mask_id = mask_ids[i % len(mask_ids)]
                i += 1
                try:
                    res = client.post(f"{server.url}/api/masks/decision",
                                      json={"mask_ids": [mask_id], "action": "reject", "who": who})
                except httpx.HTTPError:
                    return  # the server is gone: this request was never acknowledged
                if res.status_code == 200:
                    with lock:
                        acknowledged.extend((d, mask_id, who) for d in res.json()["decisions"])

    workers = [threading.Thread(target=burst, args=(w,)) for w in range(4)]
    for w in workers:
        w.start()
    deadline = time.time() + 30
    while len(acknowledged) < 40 and time.time() < deadline:
        time.sleep(0.01)
    os.kill(server.proc.pid, signal.SIGKILL)  # mid-burst: requests are in flight
    server.proc.wait()
    stop.set()
    for w in workers:
        w.join()

    assert len(acknowledged) >= 40
    conn = project.connect()
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        conn.close()
    stored = {d.id: d for d in list_decisions(project, scope="mask")}
    missing = [a for a in acknowledged if a[0] not in stored]
    assert not missing, f"{len(missing)} acknowledged decisions lost"
    assert all((stored[d].mask_id, stored[d].who, stored[d].action) == (m, w, "reject") for d, m, w in acknowledged)
