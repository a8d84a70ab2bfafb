"""End to end in a real headless browser: `bugdet review` runs as its own process, Debian's chromium
(driven by Playwright) plays a QA tester, and the decisions are checked in the database.

Screenshots of each main view are saved under the test's tmp dir and copied to
``runs/test-artifacts/review/`` (gitignored) for people to look at.
"""

from __future__ import annotations

import json
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


def _open_page(page: Page, server: Server, who: str) -> list[str]:
    """The page, ready, with the tester's name typed and the name box left (Esc), so keys reach the page;
    the POST /api/masks/decision requests it sends are collected in the returned list."""
    posts: list[str] = []
    page.on("request", lambda r: posts.append(r.post_data or "") if r.method == "POST" and r.url.endswith("/api/masks/decision") else None)
    page.goto(f"{server.url}/?token={TOKEN}")
    page.wait_for_selector("body[data-ready='1']")
    page.fill("#who", who)
    page.keyboard.press("Escape")
    return posts


def _cluster_sizes(project) -> dict[int, list[int]]:
    conn = project.connect()
    try:
        run = conn.execute("SELECT MAX(id) FROM cluster_runs").fetchone()[0]
        out: dict[int, list[int]] = {}
        for r in conn.execute("SELECT cluster, mask_id FROM cluster_members WHERE run_id = ? ORDER BY mask_id", (run,)):
            out.setdefault(r[0], []).append(r[1])
        return out
    finally:
        conn.close()


def test_keyboard_and_bulk_decisions_in_an_opened_cluster(project, server, browser_page, tmp_path):
    page, errors = browser_page
    shots = tmp_path / "screenshots"
    posts = _open_page(page, server, "kim")
    page.keyboard.press("?")
    page.wait_for_selector("#help:not(.hidden)")
    assert "undo your last action" in page.inner_text("#help")
    snap(page, shots, "9-keys-help")
    page.keyboard.press("Escape")
    page.wait_for_selector("#help", state="hidden")

    members = _cluster_sizes(project)
    biggest = max(members, key=lambda c: len(members[c]))
    page.wait_for_selector(".card.cluster")
    for _ in range(biggest):
        page.keyboard.press("l")
    assert page.get_attribute(".card.cluster.cursor", "data-cluster") == str(biggest)
    page.keyboard.press("Enter")
    page.wait_for_selector("#cluster-masks .tile")
    assert page.inner_text("#cluster-title") == f"Cluster {biggest}"

    # Click, Shift+click a range, Ctrl+click one out: three of the first four selected.
    tiles = page.locator("#cluster-masks .tile")
    ids = [int(tiles.nth(i).get_attribute("data-mask")) for i in range(4)]
    tiles.nth(0).click()
    tiles.nth(3).click(modifiers=["Shift"])
    tiles.nth(1).click(modifiers=["Control"])
    chosen = [ids[0], ids[2], ids[3]]
    assert page.inner_text("#cluster-keep") == "Keep selected (3)"
    assert sorted(int(t) for t in page.eval_on_selector_all("#cluster-masks .tile.selected", "ns => ns.map(n => n.dataset.mask)")) == sorted(chosen)
    snap(page, shots, "10-cluster-bulk-selection")
    before = mask_status(project)
    page.keyboard.press("k")  # keeps the selection: one request, one history entry
    page.wait_for_function("document.querySelector('#message').innerText.includes('Kept 3 masks')")
    assert len(posts) == 1 and sorted(json.loads(posts[0])["mask_ids"]) == sorted(chosen)
    status = mask_status(project)
    assert all(status[m] == "keep" for m in chosen) and status.get(ids[1]) == before.get(ids[1])
    page.wait_for_function("document.querySelectorAll('#cluster-masks .tile.selected').length === 0")

    # Undecided only (f) lists exactly the masks nobody has judged; the progress line counts the rest.
    page.keyboard.press("f")
    page.wait_for_selector("#cluster-detail .seg[data-show='undecided'][aria-pressed='true']")
    undecided = [m for m in members[biggest] if m not in status]
    listed = sorted(int(t) for t in page.eval_on_selector_all("#cluster-masks .tile", "ns => ns.map(n => n.dataset.mask)"))
    assert listed == sorted(undecided)
    decided = len(members[biggest]) - len(undecided)
    assert f"{decided} of {len(members[biggest])} decided in this cluster" in page.inner_text("#cluster-progress")
    run_total = sum(len(v) for v in members.values())
    assert f"{len(status)} of {run_total} masks decided in this run" in page.inner_text("#run-progress")
    page.keyboard.press("f")
    page.wait_for_selector("#cluster-detail .seg[data-show='all'][aria-pressed='true']")

    page.keyboard.press("u")  # undo the batch: the three masks are as they were
    page.wait_for_function("document.querySelector('#message').innerText.startsWith('Undone')")
    assert {m: mask_status(project).get(m) for m in chosen} == {m: before.get(m) for m in chosen}

    # Enter opens the highlighted mask; r rejects it and shows the next; Esc closes viewer, then cluster.
    page.wait_for_selector("#cluster-masks .tile")
    page.keyboard.press("l")
    cursor = int(page.get_attribute("#cluster-masks .tile.cursor", "data-mask"))
    page.keyboard.press("Enter")
    page.wait_for_selector("#mask-viewer:not(.hidden)")
    assert f"/api/masks/{cursor}/overlay.png" in page.get_attribute("#mask-viewer-img", "src")
    page.keyboard.press("r")
    page.wait_for_function(f"state.viewerMask !== {cursor}")
    assert mask_status(project)[cursor] == "reject"
    page.keyboard.press("Escape")
    page.wait_for_selector("#mask-viewer", state="hidden")
    page.keyboard.press("Escape")
    page.wait_for_selector("#cluster-detail", state="hidden")

    # Keys typed into a text box are text, not decisions.
    page.keyboard.press("3")
    page.wait_for_selector("#view-text:not(.hidden)")
    page.click("#text-prompt")
    page.keyboard.type("rk u")
    assert page.input_value("#text-prompt") == "rk u" and len(posts) == 2
    assert not errors, errors


def test_embedding_map_zoom_pan_hover_and_box_and_lasso_selection(project, server, browser_page, tmp_path):
    page, errors = browser_page
    shots = tmp_path / "screenshots"
    posts = _open_page(page, server, "lee")
    page.keyboard.press("2")
    page.wait_for_function("state.map !== null && state.map.points.length > 0")
    box = page.locator("#map-canvas").bounding_box()
    to_page = box["width"] / 720  # canvas pixels -> page pixels

    def screen() -> dict[int, tuple[float, float]]:
        pts = page.evaluate("state.map.points.map(p => [p.mask_id, ...mapXY(p)])")
        return {int(i): (box["x"] + x * to_page, box["y"] + y * to_page) for i, x, y in pts}

    start = screen()
    page.mouse.move(box["x"] + 250, box["y"] + 250)
    page.mouse.wheel(0, -300)
    page.wait_for_function("state.mapView.scale > 1.5")
    zoomed, scale = screen(), page.evaluate("state.mapView.scale")
    anchor = (box["x"] + 250, box["y"] + 250)  # the point under the pointer stays put
    for i, (x, y) in start.items():
        assert abs(zoomed[i][0] - (anchor[0] + (x - anchor[0]) * scale)) < 1 and abs(zoomed[i][1] - (anchor[1] + (y - anchor[1]) * scale)) < 1
    page.mouse.move(box["x"] + 300, box["y"] + 300)
    page.mouse.down()
    page.mouse.move(box["x"] + 260, box["y"] + 330, steps=4)
    page.mouse.up()
    panned = screen()
    assert all(abs(panned[i][0] - zoomed[i][0] + 40) < 1 and abs(panned[i][1] - zoomed[i][1] - 30) < 1 for i in start)
    page.click("#map-reset")
    assert screen() == start

    # Hover over a dot: its thumbnail appears beside the pointer.
    hover_id, (hx, hy) = next(iter(start.items()))
    page.mouse.move(hx, hy)
    page.wait_for_selector("#map-hover:not(.hidden)")
    assert page.get_attribute("#map-hover", "src").endswith(f"/api/masks/{hover_id}/thumb.png")

    # Shift+drag a box around the left half of the dots; then a lasso (drag mode) adds the rest with Ctrl.
    xs = sorted(x for x, _ in start.values())
    cut = (xs[len(xs) // 2 - 1] + xs[len(xs) // 2]) / 2
    left = {i for i, (x, _) in start.items() if x < cut}
    page.keyboard.down("Shift")
    page.mouse.move(box["x"] + 2, box["y"] + 2)
    page.mouse.down()
    page.mouse.move(cut, box["y"] + box["height"] - 2, steps=5)
    page.mouse.up()
    page.keyboard.up("Shift")
    assert set(page.evaluate("[...state.mapSelected]")) == left
    page.click("[data-map-mode=lasso]")
    right = box["x"] + (720 - 140) * to_page - 2
    page.keyboard.down("Control")
    page.mouse.move(cut, box["y"] + 2)
    page.mouse.down()
    for x, y in ((right, box["y"] + 2), (right, box["y"] + box["height"] - 2), (cut, box["y"] + box["height"] - 2)):
        page.mouse.move(x, y, steps=3)
    page.mouse.up()
    page.keyboard.up("Control")
    selected = set(page.evaluate("[...state.mapSelected]"))
    assert selected == set(start) and page.inner_text("#map-reject") == f"Reject selected ({len(start)})"
    page.click("[data-map-mode=pan]")

    # Click a dot: it is highlighted (a dark ring drawn around it) and shown on its frame.
    focus_id = min(start, key=lambda i: start[i][0])
    fx, fy = start[focus_id]
    page.mouse.click(fx, fy)
    page.wait_for_selector("#map-focus img.overlay")
    assert page.evaluate("state.mapFocus") == focus_id and f"Mask {focus_id}" in page.inner_text("#map-focus")
    cx, cy = page.evaluate(f"mapXY(state.map.points.find(p => p.mask_id === {focus_id}))")
    ring = page.evaluate(f"Array.from(document.querySelector('#map-canvas').getContext('2d').getImageData({round(cx + 11)}, {round(cy)}, 1, 1).data)")
    assert ring[:3] == [0, 0, 0] or max(ring[:3]) < 60, ring
    snap(page, shots, "11-map-selection")

    before = mask_status(project)
    page.keyboard.press("r")  # rejects the whole selection, in one request
    page.wait_for_function(f"document.querySelector('#message').innerText.includes('Rejected {len(start)} masks')")
    assert len(posts) == 1 and sorted(json.loads(posts[0])["mask_ids"]) == sorted(start)
    status = mask_status(project)
    assert all(status[i] == "reject" for i in start)
    page.keyboard.press("Control+z")  # the other undo key: the whole selection's batch is revoked
    page.wait_for_function("document.querySelector('#message').innerText.startsWith('Undone')")
    after = mask_status(project)
    assert {i: after.get(i) for i in start} == {i: before.get(i) for i in start}
    assert not errors, errors


def test_flag_keys_frame_strip_filters_and_zoomed_drawing(project, server, browser_page, tmp_path):
    page, errors = browser_page
    shots = tmp_path / "screenshots"
    _open_page(page, server, "max")
    page.keyboard.press("5")
    page.wait_for_selector(".card.flag")
    assert page.locator("#view-flags .segmented button.flag-filter[aria-pressed='true']").count() == 1
    page.wait_for_function("Array.from(document.querySelectorAll('.flag-crop')).some(c => "
                           "c.getContext('2d').getImageData(80, 80, 1, 1).data[3] > 0)")  # the box's region, enlarged
    cards = page.locator(".card.flag")
    second = int(cards.nth(1).get_attribute("data-flag"))
    page.keyboard.press("l")
    page.keyboard.press("Enter")
    page.wait_for_selector("#flag-viewer:not(.hidden) .flag-crop")
    snap(page, shots, "12-flag-enlarged")
    page.keyboard.press("Escape")
    page.wait_for_selector("#flag-viewer", state="hidden")
    page.keyboard.press("y")
    page.wait_for_function(f"!document.querySelector(\".card.flag[data-flag='{second}']\")")
    conn = project.connect()
    try:
        flag = next(f for f in list_flags(conn) if f.id == second)
        frames = {r[0]: r[1] for r in conn.execute("SELECT id, path FROM frames")}
        flagged = {r[0] for r in conn.execute("SELECT frame_id FROM flags")}
    finally:
        conn.close()
    assert flag.status == "confirmed" and flag.reviewed_by == "max"
    snap(page, shots, "13-flags-after-key")

    # The frame strip: server-side filters and file-name search.
    page.keyboard.press("4")
    page.wait_for_function("state.frames.length > 0 && state.frameImage !== undefined")
    strip = lambda: sorted(int(i) for i in page.eval_on_selector_all("#frame-strip .frame-tile", "ns => ns.map(n => n.dataset.frame)"))
    assert strip() == sorted(frames)
    page.select_option("#frame-flagged", "yes")
    page.wait_for_function(f"document.querySelectorAll('#frame-strip .frame-tile').length === {len(flagged)}")
    assert strip() == sorted(flagged)
    page.select_option("#frame-flagged", "any")
    target = max(frames)
    piece = frames[target].rsplit("/", 1)[-1][:10]
    page.fill("#frame-search", piece)
    page.wait_for_function("document.querySelectorAll('#frame-strip .frame-tile').length === 1")
    assert strip() == [target] and page.inner_text("#frames-page") == "frames 1-1 of 1"
    page.fill("#frame-search", "")
    page.wait_for_function(f"document.querySelectorAll('#frame-strip .frame-tile').length === {len(frames)}")

    # Zoom on the drawing canvas; a click lands on the image pixel under the pointer.
    canvas = page.locator("#draw-canvas").bounding_box()
    page.mouse.move(canvas["x"] + canvas["width"] * 0.3, canvas["y"] + canvas["height"] * 0.6)
    page.mouse.wheel(0, -500)
    page.wait_for_function("state.drawView.scale > 2")
    target_px = (41.0, 77.0)
    cx, cy = page.evaluate(f"toCanvas({target_px[0]}, {target_px[1]})")
    width = page.evaluate("document.querySelector('#draw-canvas').width")
    page.mouse.click(canvas["x"] + cx * canvas["width"] / width, canvas["y"] + cy * canvas["width"] / width)
    page.wait_for_function("state.prompt.points.length === 1")
    point = page.evaluate("state.prompt.points[0]")
    frame_w = page.evaluate("state.frames[state.frameIndex].width")
    tolerance = frame_w / width / page.evaluate("state.drawView.scale") + 0.1  # one screen pixel in image pixels
    assert abs(point[0] - target_px[0]) <= tolerance and abs(point[1] - target_px[1]) <= tolerance, point
    page.wait_for_selector("#draw-save-source:not([disabled])")
    snap(page, shots, "14-draw-zoomed-strip")
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
