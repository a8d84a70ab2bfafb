"""The review app's HTTP API on a real project (recorded playtest frames, OpenCV masks, an unpretrained
ViT-S-32, a k-means run, flags a real detector raised during a streamed playtest).

Every route is exercised through Starlette's TestClient, and every decision is checked where the
rest of bugdet reads it: the decisions store, the masks table, frame labels.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import socket
import sqlite3
import threading

import cv2
import numpy as np
import pytest
from starlette.testclient import TestClient

from bugdet.augment.loaders import prompt_weapon_masks
from bugdet.cli import main
from bugdet.cluster.runs import get_run, run_members
from bugdet.cluster.summary import map_coordinates
from bugdet.embed.pipeline import build_embedder
from bugdet.embed.store import load_embeddings
from bugdet.project import Project
from bugdet.errors import InputError
from bugdet.refine.decisions import NewDecision, list_decisions, mask_status, record_decisions, revoke_decisions
from bugdet.review.app import create_app
from bugdet.review.flags import import_flag_session, list_flags, write_flag_session
from bugdet.store.labels import current_labels, insert_labels
from review_project import shared_review_project

WHO = "ana"


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return shared_review_project(tmp_path_factory, "review-api")


@pytest.fixture(scope="module")
def project(built) -> Project:
    return built[0]


@pytest.fixture(scope="module")
def client(project) -> TestClient:
    return TestClient(create_app(project))


def _png(response) -> np.ndarray:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    image = cv2.imdecode(np.frombuffer(response.content, np.uint8), cv2.IMREAD_UNCHANGED)
    assert image is not None
    return image


def _latest_run(project):
    conn = project.connect()
    try:
        run = get_run(conn)
        return run, run_members(conn, run.id)
    finally:
        conn.close()


def test_info_names_the_unpretrained_model_and_counts(client, project):
    info = client.get("/api/info").json()
    assert info["model"]["pretrained"] is False and "unpretrained" in info["model"]["label"]
    assert info["counts"]["masks"] == info["counts"]["embedded_masks"] > 0
    assert info["counts"]["flags_pending"] == 5 and info["counts"]["cluster_runs"] == 1
    assert info["token_required"] is False
    page = client.get("/")
    assert page.status_code == 200 and "bugdet review" in page.text
    assert "http" not in page.text.replace("http-equiv", "")  # nothing loaded from other hosts
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert client.get("/static/app.js").status_code == 200


def test_cluster_gallery_pages_and_images(client, project):
    run, members = _latest_run(project)
    data = client.get("/api/clusters").json()
    assert data["run"]["id"] == run.id and len(data["clusters"]) == run.k
    assert sum(c["size"] for c in data["clusters"]) == len(members)
    sizes = {c["cluster"]: c["size"] for c in data["clusters"]}
    biggest = max(sizes, key=sizes.get)
    first = client.get(f"/api/clusters/{biggest}/masks", params={"limit": 3}).json()
    second = client.get(f"/api/clusters/{biggest}/masks", params={"limit": 3, "offset": 3}).json()
    assert first["total"] == sizes[biggest] and len(first["masks"]) == 3
    expected = {m.mask_id for m in members if m.cluster == biggest}
    assert {m["mask_id"] for m in first["masks"] + second["masks"]} <= expected
    assert not {m["mask_id"] for m in first["masks"]} & {m["mask_id"] for m in second["masks"]}
    sims = [m["similarity"] for m in first["masks"] + second["masks"]]
    assert sims == sorted(sims, reverse=True)

    mask_id = first["masks"][0]["mask_id"]
    assert _png(client.get(f"/api/masks/{mask_id}/thumb.png")).shape[:2] == (96, 96)
    info = client.get(f"/api/masks/{mask_id}").json()
    assert info["cluster"] == {"run": run.id, "cluster": biggest}
    overlay = _png(client.get(f"/api/masks/{mask_id}/overlay.png"))
    frame = _png(client.get(f"/api/frames/{info['frame_id']}/image.png"))
    assert overlay.shape == frame.shape and not np.array_equal(overlay, frame)


def test_embedding_map_has_every_member_once(client, project):
    run, members = _latest_run(project)
    data = client.get("/api/map").json()
    by_id = {p["mask_id"]: p for p in data["points"]}
    assert len(by_id) == len(data["points"]) == len(members)
    assert all(by_id[m.mask_id]["cluster"] == m.cluster for m in members)
    xs, ys = np.array([p["x"] for p in data["points"]]), np.array([p["y"] for p in data["points"]])
    assert xs.min() == 0 and xs.max() == 1 and ys.min() == 0 and ys.max() == 1
    # The same projection the cluster summary draws: its map_coordinates on the run's embeddings.
    conn = project.connect()
    try:
        ids, vectors = load_embeddings(project.root, conn, run.model_key, "mask", [m.mask_id for m in members])
    finally:
        conn.close()
    expected = map_coordinates(vectors, project.config.filter.cluster.seed)
    np.testing.assert_allclose(np.stack([xs, ys], 1), expected[np.searchsorted(ids, list(by_id))], atol=1e-4)


def test_text_prompt_ranks_by_clip_similarity_and_batch_decision_undoes_as_one(client, project):
    embedder = build_embedder(project)
    data = client.post("/api/text/rank", json={"prompt": "brick wall", "limit": 6}).json()
    assert data["pretrained"] is False and data["prompts"] == ["brick wall"]
    conn = project.connect()
    try:
        ids, vectors = load_embeddings(project.root, conn, embedder.key, "mask")
    finally:
        conn.close()
    text = embedder.embed_texts([project.config.filter.embed.prompt_template.format("brick wall")])
    scores = (vectors @ text.T)[:, 0]
    expected = [int(ids[i]) for i in np.argsort(-scores, kind="stable")[:6]]
    assert [r["mask_id"] for r in data["results"]] == expected
    np.testing.assert_allclose([r["score"] for r in data["results"]], np.sort(scores)[::-1][:6], atol=1e-3)

    picked = expected[:4]
    res = client.post("/api/masks/decision", json={"mask_ids": picked, "action": "reject", "who": WHO,
                                                   "context": "text prompt 'brick wall'"}).json()
    assert res["count"] == 4 and res["history_key"].startswith("batch:")
    assert mask_status(project, picked) == {m: "reject" for m in picked}
    entry = next(e for e in client.get("/api/history").json()["entries"] if e["key"] == res["history_key"])
    assert entry["count"] == 4 and "brick wall" in entry["summary"] and entry["who"] == WHO
    assert client.post("/api/undo", json={"key": res["history_key"]}).status_code == 200
    assert mask_status(project, picked) == {}


def _decision_rows(project) -> int:
    conn = project.connect()
    try:
        return conn.execute("SELECT COUNT(*) FROM decisions").fetchone()[0]
    finally:
        conn.close()


@contextlib.contextmanager
def failing_insert(project, table: str, when: str):
    """A real SQLite failure on the next insert into ``table`` matching ``when`` (a trigger aborting
    it, as a full disk or a constraint would), removed afterwards."""
    conn = project.connect()
    try:
        conn.execute(f"CREATE TRIGGER test_fail BEFORE INSERT ON {table} WHEN {when} "
                     "BEGIN SELECT RAISE(ABORT, 'injected failure'); END")
        yield
    finally:
        conn.execute("DROP TRIGGER IF EXISTS test_fail")
        conn.close()


def test_a_batch_of_decisions_is_all_or_nothing(client, project):
    _, members = _latest_run(project)
    picked = [m.mask_id for m in members[:5]]
    before = _decision_rows(project)
    # An invalid row at the end: the first four rows were inserted, then rolled back.
    batch = [NewDecision(scope="mask", action="reject", who=WHO, mask_id=m) for m in picked[:4]]
    with pytest.raises(InputError, match="action must be one of"):
        record_decisions(project, batch + [NewDecision(scope="mask", action="maybe", who=WHO, mask_id=picked[4])])
    # A row the database refuses at the end (its rule does not exist: foreign key).
    with pytest.raises(sqlite3.IntegrityError):
        record_decisions(project, batch + [NewDecision(scope="mask", action="pass", mask_id=picked[4], rule_id=10**9)])
    assert _decision_rows(project) == before and mask_status(project, picked) == {}

    # Through the app: the database fails on the last mask of "reject selected".
    with failing_insert(project, "decisions", f"NEW.mask_id = {picked[-1]}"):
        res = TestClient(create_app(project), raise_server_exceptions=False).post("/api/masks/decision", json={"mask_ids": picked, "action": "reject", "who": WHO})
    assert res.status_code == 500
    assert _decision_rows(project) == before and mask_status(project, picked) == {}

    done = record_decisions(project, batch)  # the same batch, valid: every row, one shared time
    assert [d.mask_id for d in done] == picked[:4] and len({d.created_at for d in done}) == 1
    assert mask_status(project, picked) == {m: "reject" for m in picked[:4]}
    revoke_decisions(project, [d.id for d in done])
    assert mask_status(project, picked) == {}
    with pytest.raises(InputError, match="no decision"):  # an unknown id revokes nothing
        revoke_decisions(project, [done[0].id, 10**9])


def test_text_rule_rejects_everything_above_the_threshold(client, project):
    ranked = client.post("/api/text/rank", json={"prompt": "sky", "limit": 5}).json()["results"]
    threshold = ranked[-1]["score"] - 1e-4
    res = client.post("/api/text/rule", json={"prompt": "sky", "action": "reject", "threshold": threshold, "who": WHO})
    assert res.status_code == 200, res.text
    body = res.json()
    assert body["decision"]["prompts"] == ["sky"] and body["decision"]["who"] == WHO
    assert body["matched"] >= 5
    status = mask_status(project)
    assert all(status[r["mask_id"]] == "reject" for r in ranked)
    client.post("/api/undo", json={"key": body["history_key"]})
    assert all(s != "reject" for s in mask_status(project).values())


def test_reject_a_whole_cluster_then_undo(client, project):
    run, members = _latest_run(project)
    cluster = members[0].cluster
    res = client.post(f"/api/clusters/{cluster}/decision", json={"action": "reject", "who": WHO}).json()
    ids = [m.mask_id for m in members if m.cluster == cluster]
    assert res["matched"] == len(ids)
    assert mask_status(project, ids) == {m: "reject" for m in ids}
    card = client.get("/api/clusters").json()["clusters"][cluster]
    assert card["verdict"]["action"] == "reject" and card["rejected"] == len(ids)
    client.post("/api/undo", json={"last": True, "who": WHO})
    assert "reject" not in mask_status(project, ids).values()
    assert client.get("/api/clusters").json()["clusters"][cluster]["verdict"] is None


def test_geometry_prompt_preview_is_cached_and_saves_weapon_and_source_masks(client, project):
    frame_id = client.get("/api/frames").json()["frames"][0]["frame_id"]
    prompt = {"points": [[80, 20]], "labels": [1]}
    first = client.post(f"/api/frames/{frame_id}/predict", json=prompt).json()
    again = client.post(f"/api/frames/{frame_id}/predict", json={**prompt, "box": [40, 2, 120, 50]}).json()
    assert first["area"] > 0 and again["frame_cached"] is True and again["seconds"] < 1.0
    layer = cv2.imdecode(np.frombuffer(__import__("base64").b64decode(first["overlay"].split(",")[1]), np.uint8),
                         cv2.IMREAD_UNCHANGED)
    assert layer.shape[2] == 4 and int((layer[..., 3] > 0).sum()) == first["area"]
    other = client.get("/api/frames").json()["frames"][1]["frame_id"]
    prepared = client.post(f"/api/frames/{other}/prepare").json()  # the page asks when a frame is opened
    assert prepared["cached"] is False and client.post(f"/api/frames/{other}/prepare").json()["cached"] is True
    assert client.post(f"/api/frames/{other}/predict", json=prompt).json()["frame_cached"] is True

    box = {"box": [60, 70, 130, 119]}
    preview = client.post(f"/api/frames/{frame_id}/predict", json=box).json()
    weapon = client.post(f"/api/frames/{frame_id}/save", json={**box, "role": "weapon", "who": WHO}).json()
    stored = prompt_weapon_masks(project)  # what the augment stage reads for weapon_source=prompt
    assert stored[frame_id].id == weapon["mask_id"] and stored[frame_id].area == preview["area"]

    source = client.post(f"/api/frames/{frame_id}/save", json={**prompt, "role": "source", "who": WHO}).json()
    assert mask_status(project, [source["mask_id"]]) == {source["mask_id"]: "keep"}
    listed = client.get(f"/api/frames/{frame_id}/masks").json()["masks"]
    assert {(m["mask_id"], m["role"]) for m in listed} >= {(weapon["mask_id"], "weapon"), (source["mask_id"], "source")}
    keys = [e["key"] for e in client.get("/api/history").json()["entries"]]
    assert f"mask:{source['mask_id']}" in keys and f"mask:{weapon['mask_id']}" in keys
    assert client.post("/api/undo", json={"key": f"mask:{source['mask_id']}"}).status_code == 200
    assert client.get(f"/api/masks/{source['mask_id']}").status_code == 404
    assert mask_status(project, [source["mask_id"]]) == {}
    # The undone mask keeps its row in the history, marked undone (the page strikes it through).
    undone = [e for e in client.get("/api/history").json()["entries"] if e["key"] == f"mask:{source['mask_id']}"]
    assert len(undone) == 1 and undone[0]["revoked_at"] is not None and undone[0]["action"] == "save-source"
    assert f"mask {source['mask_id']} on frame {frame_id}" in undone[0]["summary"]
    # Saving again may reuse the deleted mask's id: the new mask and the undone one stay two entries.
    again = client.post(f"/api/frames/{frame_id}/save", json={**prompt, "role": "source", "who": WHO}).json()
    entries = client.get("/api/history").json()["entries"]
    mine = [e for e in entries if e["summary"].startswith(f"saved source mask {source['mask_id']} ")
            or e["key"] == f"mask:{again['mask_id']}"]
    assert sorted(e["revoked_at"] is None for e in mine) == [False, True] and len({e["key"] for e in mine}) == 2
    assert client.post("/api/undo", json={"key": f"mask:{again['mask_id']}"}).status_code == 200
    assert all(e["revoked_at"] is not None for e in client.get("/api/history").json()["entries"]
               if e["key"].startswith((f"mask:{source['mask_id']}", f"mask:{again['mask_id']}")))


#: Positive points all over a 160x120 frame: their union covers most of it (measured 89-93%).
EVERYWHERE = {"points": [[x, y] for x in (10, 50, 90, 130, 150) for y in (10, 40, 70, 100, 115)], "labels": [1] * 25}


def test_frame_filling_prompt_mask_is_flagged_and_needs_confirmation_as_weapon_mask(client, project):
    frame_id = client.get("/api/frames").json()["frames"][2]["frame_id"]
    small = client.post(f"/api/frames/{frame_id}/predict", json={"box": [60, 70, 130, 119]}).json()
    assert small["frame_filling"] is False and small["warning"] is None and 0 < small["frame_fraction"] < 0.5
    big = client.post(f"/api/frames/{frame_id}/predict", json=EVERYWHERE).json()
    assert big["frame_filling"] is True and big["frame_fraction"] > 0.5 and "of the frame" in big["warning"]
    assert big["score"] < 0.5  # a frame-filling blob is not reported as a good mask

    before = prompt_weapon_masks(project).get(frame_id)
    refused = client.post(f"/api/frames/{frame_id}/save", json={**EVERYWHERE, "role": "weapon", "who": WHO})
    assert refused.status_code == 409 and '"confirm": true' in refused.json()["error"]
    after = prompt_weapon_masks(project).get(frame_id)
    assert (before is None and after is None) or after.id == before.id  # nothing was stored or replaced
    bad = client.post(f"/api/frames/{frame_id}/save", json={**EVERYWHERE, "role": "weapon", "who": WHO, "confirm": "yes"})
    assert bad.status_code == 400 and "'confirm' must be true or false" in bad.json()["error"]

    first = client.post(f"/api/frames/{frame_id}/save", json={"box": [60, 70, 130, 119], "role": "weapon", "who": WHO}).json()
    saved = client.post(f"/api/frames/{frame_id}/save",
                        json={**EVERYWHERE, "role": "weapon", "who": WHO, "confirm": True}).json()
    assert saved["frame_filling"] is True and prompt_weapon_masks(project)[frame_id].id == saved["mask_id"]
    # The weapon mask it replaced (one per frame) stays in the history, marked as replaced.
    entries = {e["key"]: e for e in client.get("/api/history").json()["entries"]}
    replaced = [e for e in entries.values() if e["summary"].startswith(f"saved weapon mask {first['mask_id']} ")
                and e["revoked_at"] is not None]  # SQLite may have given its id to the new mask: keys stay apart
    assert len(replaced) == 1 and "replaced by a newer weapon mask" in replaced[0]["summary"]
    assert f"{first['area']} px" in replaced[0]["summary"]
    assert entries[saved["history_key"]]["revoked_at"] is None
    client.post("/api/undo", json={"key": saved["history_key"]})


def test_cli_refuses_a_frame_filling_weapon_mask_without_force(project, capsys):
    conn = project.connect()
    try:
        frame_id = conn.execute("SELECT id FROM frames ORDER BY id LIMIT 1 OFFSET 2").fetchone()[0]
    finally:
        conn.close()
    points = [a for x, y in EVERYWHERE["points"] for a in ("--point", f"{x},{y}")]
    args = ["prompt", "--project", str(project.root), "--frame", str(frame_id), *points, "--save", "--role", "weapon"]
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "% of the frame" in errors[0] and "--force" in errors[0], err
    assert main([*args, "--force"]) is None
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["frame_filling"] is True and prompt_weapon_masks(project)[frame_id].id == result["mask_id"]


def test_flag_verdicts_become_frame_labels_and_undo_removes_them(client, project):
    flags = client.get("/api/flags").json()
    assert flags["counts"]["pending"] == 5 and all(f["box"] and len(f["box"]) == 4 for f in flags["flags"])
    assert "truth" not in flags["flags"][0]  # testers judge without the world's answer
    a, b = flags["flags"][0], flags["flags"][1]
    confirmed = client.post(f"/api/flags/{a['id']}/decision", json={"verdict": "confirm", "who": WHO}).json()
    client.post(f"/api/flags/{b['id']}/decision", json={"verdict": "reject", "who": "ben"})
    conn = project.connect()
    try:
        labels = current_labels(conn)
        sources = {(r["frame_id"], r["who"], r["source"]) for r in conn.execute("SELECT * FROM frame_labels")}
    finally:
        conn.close()
    assert labels[a["frame_id"]][a["bug_type"]] == 1 and labels[b["frame_id"]][b["bug_type"]] == 0
    assert (a["frame_id"], WHO, "review") in sources and (b["frame_id"], "ben", "review") in sources
    counts = client.get("/api/flags", params={"status": "all"}).json()["counts"]
    assert counts == {"pending": 3, "confirmed": 1, "rejected": 1, "all": 5}

    client.post("/api/undo", json={"key": confirmed["history_key"]})
    conn = project.connect()
    try:
        assert a["bug_type"] not in current_labels(conn).get(a["frame_id"], {})
        assert [f.status for f in list_flags(conn) if f.id == a["id"]] == ["pending"]
    finally:
        conn.close()


def _labels_and_reviews(project) -> tuple[list[tuple], list[tuple]]:
    conn = project.connect()
    try:
        labels = [tuple(r) for r in conn.execute("SELECT id, frame_id, bug_type, label, who FROM frame_labels")]
        reviews = [tuple(r) for r in conn.execute("SELECT id, flag_id, verdict, label_id FROM flag_reviews")]
    finally:
        conn.close()
    return labels, reviews


def test_a_flag_verdict_writes_its_label_and_review_together(client, project):
    flag = client.get("/api/flags", params={"status": "pending"}).json()["flags"][-1]
    labels, reviews = _labels_and_reviews(project)
    with failing_insert(project, "flag_reviews", "1"):  # the review row fails after its label was inserted
        res = TestClient(create_app(project), raise_server_exceptions=False).post(f"/api/flags/{flag['id']}/decision", json={"verdict": "confirm", "who": "cy"})
    assert res.status_code == 500
    assert _labels_and_reviews(project) == (labels, reviews)  # no label without its review

    res = client.post(f"/api/flags/{flag['id']}/decision", json={"verdict": "confirm", "who": "cy"})
    assert res.status_code == 200, res.text
    new_labels, new_reviews = _labels_and_reviews(project)
    [label] = [r for r in new_labels if r not in labels]
    [review] = [r for r in new_reviews if r not in reviews]
    assert label[1:] == (flag["frame_id"], flag["bug_type"], 1, "cy")
    assert review[1:] == (flag["id"], "confirm", label[0])  # the review points at exactly that label
    client.post("/api/undo", json={"key": res.json()["history_key"]})
    assert _labels_and_reviews(project)[0] == labels
    conn = project.connect()
    try:
        with pytest.raises(RuntimeError, match="inside the caller's transaction"):
            insert_labels(conn, [(flag["frame_id"], "good", 1)])  # the transactional half needs a transaction
    finally:
        conn.close()


def test_flags_and_frames_page_with_totals(client, project):
    conn = project.connect()
    try:
        every_flag = [f.id for f in list_flags(conn)]
        every_frame = [r[0] for r in conn.execute("SELECT id FROM frames ORDER BY id")]
    finally:
        conn.close()
    pages = [client.get("/api/flags", params={"status": "all", "offset": o, "limit": 2}).json() for o in (0, 2, 4, 6)]
    assert [len(p["flags"]) for p in pages] == [2, 2, 1, 0]
    assert all(p["total"] == p["counts"]["all"] == len(every_flag) == 5 and p["limit"] == 2 for p in pages)
    assert [f["id"] for p in pages for f in p["flags"]] == every_flag  # in order, each exactly once
    pending = client.get("/api/flags", params={"status": "pending", "offset": 1, "limit": 2}).json()
    assert pending["total"] == pending["counts"]["pending"] and pending["offset"] == 1
    assert {f["status"] for f in pending["flags"]} == {"pending"} and len(pending["flags"]) == min(2, pending["total"] - 1)

    assert len(every_frame) > 3  # recorded frames plus the flagged playtest frames
    pages = [client.get("/api/frames", params={"offset": o, "limit": 3}).json() for o in range(0, len(every_frame) + 3, 3)]
    assert all(p["total"] == len(every_frame) and p["limit"] == 3 for p in pages) and not pages[-1]["frames"]
    assert [f["frame_id"] for p in pages for f in p["frames"]] == every_frame


def test_frame_strip_filters_searches_and_pages_on_the_server(client, project, monkeypatch):
    conn = project.connect()
    try:
        frames = {r["id"]: r for r in conn.execute("SELECT id, path, split FROM frames ORDER BY id")}
        flagged = {r[0] for r in conn.execute("SELECT DISTINCT frame_id FROM flags")}
        with_masks = {r[0] for r in conn.execute("SELECT DISTINCT frame_id FROM masks")}
    finally:
        conn.close()
    every = set(frames)
    assert flagged and with_masks and flagged != with_masks and flagged | with_masks <= every

    def ids(**params) -> list[int]:
        data = client.get("/api/frames", params={"limit": 500, **params}).json()
        assert data["total"] == len(data["frames"])
        return [f["frame_id"] for f in data["frames"]]

    assert ids(flagged="yes") == sorted(flagged) and ids(flagged="no") == sorted(every - flagged)
    assert ids(has_masks="yes") == sorted(with_masks) and ids(has_masks="no") == sorted(every - with_masks)
    assert ids(flagged="yes", has_masks="yes") == sorted(flagged & with_masks)

    # A flag verdict writes a frame label: the frame turns up under "labeled" (and not under "not labeled").
    flag = client.get("/api/flags", params={"status": "pending", "limit": 1}).json()["flags"][0]
    verdict = client.post(f"/api/flags/{flag['id']}/decision", json={"verdict": "reject", "who": WHO}).json()
    assert flag["frame_id"] in ids(labeled="yes") and flag["frame_id"] not in ids(labeled="no")
    assert sorted(ids(labeled="yes") + ids(labeled="no")) == sorted(every)
    client.post("/api/undo", json={"key": verdict["history_key"]})

    page = client.get("/api/frames", params={"flagged": "yes", "limit": 2, "offset": 2}).json()
    assert page["total"] == len(flagged) and [f["frame_id"] for f in page["frames"]] == sorted(flagged)[2:4]
    one = page["frames"][0]
    assert one["flags"] >= 1 and one["name"] == frames[one["frame_id"]]["path"].rsplit("/", 1)[-1]
    assert page["splits"] == sorted({r["split"] for r in frames.values()})

    # Search by a piece of the file name; LIKE's wildcards are taken literally.
    target = min(with_masks)
    name = frames[target]["path"].rsplit("/", 1)[-1]
    piece = name[len(name) // 3: len(name) // 3 + 12]
    found = ids(q=piece.upper())
    assert target in found and all(piece.lower() in frames[f]["path"].lower() for f in found)
    assert ids(q="%") == [] and ids(q="no-such-frame") == []
    split = frames[target]["split"]
    assert ids(split=split) == sorted(f for f, r in frames.items() if r["split"] == split)
    assert ids(split="(none)") == sorted(f for f, r in frames.items() if r["split"] == "")

    bad = client.get("/api/frames", params={"labeled": "maybe"})
    assert bad.status_code == 400 and "'labeled' must be one of any, yes, no" in bad.json()["error"]

    full = _png(client.get(f"/api/frames/{target}/image.png"))
    assert _png(client.get(f"/api/frames/{target}/thumb.png")).shape == full.shape  # already small: unchanged
    from bugdet.review.api import frames as frames_api
    monkeypatch.setattr(frames_api, "FRAME_THUMB", 80)
    assert _png(client.get(f"/api/frames/{target}/thumb.png")).shape[:2] == (60, 80)  # 160x120 shrunk


def test_cluster_lists_undecided_masks_only_and_counts_progress(client, project):
    run, members = _latest_run(project)
    sizes = {c: sum(m.cluster == c for m in members) for c in range(run.k)}
    cluster = max(sizes, key=sizes.get)
    before = client.get(f"/api/clusters/{cluster}/masks", params={"limit": 500}).json()
    undecided = [m["mask_id"] for m in before["masks"] if m["status"] is None]
    assert len(undecided) >= 3
    chosen = undecided[:3]
    res = client.post("/api/masks/decision", json={"mask_ids": chosen, "action": "reject", "who": WHO,
                                                   "context": f"cluster {cluster}"}).json()
    try:
        listed = client.get(f"/api/clusters/{cluster}/masks", params={"show": "undecided", "limit": 500}).json()
        status = mask_status(project, [m.mask_id for m in members])
        in_cluster = [m.mask_id for m in members if m.cluster == cluster]
        assert listed["show"] == "undecided" and listed["size"] == sizes[cluster]
        assert {m["mask_id"] for m in listed["masks"]} == {m for m in in_cluster if m not in status}
        assert listed["total"] == len(listed["masks"]) == sizes[cluster] - listed["decided"]
        assert not set(chosen) & {m["mask_id"] for m in listed["masks"]}
        paged = client.get(f"/api/clusters/{cluster}/masks", params={"show": "undecided", "limit": 2, "offset": 1}).json()
        assert [m["mask_id"] for m in paged["masks"]] == [m["mask_id"] for m in listed["masks"]][1:3]

        overview = client.get("/api/clusters").json()
        progress = overview["progress"]
        assert progress["total"] == len(members) and progress["decided"] == len(status)
        assert progress["rejected"] == sum(v == "reject" for v in status.values())
        assert {c["cluster"]: c["decided"] for c in overview["clusters"]}[cluster] == listed["decided"]
    finally:
        client.post("/api/undo", json={"key": res["history_key"]})
    after = client.get(f"/api/clusters/{cluster}/masks", params={"show": "undecided", "limit": 500}).json()
    assert set(chosen) <= {m["mask_id"] for m in after["masks"]}  # the undone batch is undecided again
    bad = client.get(f"/api/clusters/{cluster}/masks", params={"show": "some"})
    assert bad.status_code == 400 and "'show' must be one of all, undecided" in bad.json()["error"]


def test_export_decisions_and_labels_as_json_and_csv(client, project):
    client.post("/api/masks/decision", json={"mask_ids": [1], "action": "keep", "who": WHO})
    history = client.get("/api/history").json()
    as_json = client.get("/api/export", params={"what": "decisions", "format": "json"})
    assert "attachment" in as_json.headers["content-disposition"]
    rows = json.loads(as_json.text)["rows"]
    assert len(rows) == history["total"] and {r["key"] for r in rows} == {e["key"] for e in history["entries"]}
    as_csv = list(csv.DictReader(io.StringIO(client.get("/api/export", params={"what": "decisions", "format": "csv"}).text)))
    assert [r["key"] for r in as_csv] == [r["key"] for r in rows]
    labels = list(csv.DictReader(io.StringIO(client.get("/api/export", params={"what": "labels", "format": "csv"}).text)))
    assert labels and {r["source"] for r in labels} == {"review"} and all(r["path"].startswith("frames/") for r in labels)
    masks = json.loads(client.get("/api/export", params={"what": "masks"}).text)["rows"]
    assert {"mask_id": 1, "status": "keep"} in masks


@pytest.mark.parametrize("method, path, body, status, message", [
    ("post", "/api/masks/decision", {"mask_ids": [1], "action": "reject"}, 400, "enter your name"),
    ("post", "/api/masks/decision", {"mask_ids": [1], "action": "delete", "who": WHO}, 400, "'action' must be one of"),
    ("post", "/api/masks/decision", {"mask_ids": "1", "action": "keep", "who": WHO}, 400, "'mask_ids' must be"),
    ("post", "/api/masks/decision", {"mask_ids": [999999], "action": "keep", "who": WHO}, 400, "no such mask"),
    ("post", "/api/masks/decision", {"mask_ids": [1], "action": "keep", "who": "<script>"}, 400, "names may use"),
    ("post", "/api/clusters/99/decision", {"action": "keep", "who": WHO}, 400, "has clusters 0.."),
    ("get", "/api/clusters?run=42", None, 404, "no clustering run 42"),
    ("get", "/api/clusters/99/masks", None, 404, "has clusters"),
    ("get", "/api/masks/999999/thumb.png", None, 404, "no mask #999999"),
    ("get", "/api/frames/999999/image.png", None, 404, "no frame #999999"),
    ("post", "/api/frames/1/predict", {"points": [[500, 5]], "labels": [1]}, 400, "outside the 160x120 image"),
    ("post", "/api/frames/1/predict", {"points": [[5, 5]], "labels": [0]}, 400, "at least one positive point or a box"),
    ("post", "/api/frames/1/predict", {"box": [50, 50, 10, 10]}, 400, "x0 < x1"),
    ("post", "/api/frames/1/predict", {"points": [["a", 5]]}, 400, "list of numbers"),
    ("post", "/api/frames/1/save", {"box": [1, 1, 60, 60], "role": "hat", "who": WHO}, 400, "'role' must be one of"),
    ("post", "/api/text/rank", {"prompt": " , "}, 400, "no prompts given"),
    ("post", "/api/text/rule", {"prompt": "sky", "action": "reject", "threshold": 3, "who": WHO}, 400, "between -1 and 1"),
    ("post", "/api/flags/1/decision", {"verdict": "maybe", "who": WHO}, 400, "'verdict' must be one of"),
    ("post", "/api/flags/99999/decision", {"verdict": "confirm", "who": WHO}, 404, "no flag #99999"),
    ("get", "/api/flags?status=lost", None, 400, "'status' must be one of"),
    ("get", "/api/flags?limit=0", None, 400, "'limit' must be between 1 and 200"),
    ("get", "/api/flags?offset=-1", None, 400, "'offset' must be between 0"),
    ("get", "/api/frames?limit=501", None, 400, "'limit' must be between 1 and 500"),
    ("post", "/api/undo", {"key": "decision:999999"}, 404, "no history entry"),
    ("post", "/api/undo", {"key": "drop table"}, 400, "history entry must look like"),
    ("get", "/api/export?what=everything", None, 400, "'what' must be one of"),
    ("get", "/api/clusters?run=x", None, 400, "'run' must be an integer"),
])
def test_bad_input_is_a_4xx_with_a_clear_message(client, method, path, body, status, message):
    response = client.post(path, json=body) if method == "post" else client.get(path)
    assert response.status_code == status, response.text
    assert message in response.json()["error"]


def test_malformed_json_is_rejected(client):
    response = client.post("/api/masks/decision", content=b"{not json", headers={"content-type": "application/json"})
    assert response.status_code == 400 and "not valid JSON" in response.json()["error"]


def test_token_is_required_from_header_query_or_cookie(project):
    app = create_app(project, token="s3cret")
    with TestClient(app) as anonymous:
        assert anonymous.get("/api/info").status_code == 401
        assert anonymous.get("/").status_code == 401
        assert anonymous.get("/api/info", headers={"Authorization": "Bearer wrong"}).status_code == 401
    with TestClient(app) as tester:
        assert tester.get("/api/info", headers={"Authorization": "Bearer s3cret"}).status_code == 200
        assert tester.get("/api/info", headers={"X-Bugdet-Token": "s3cret"}).status_code == 200
    with TestClient(app) as browser:
        link = browser.get("/?token=s3cret", follow_redirects=False)
        assert link.status_code == 303 and link.headers["location"].endswith("/") and "token" not in link.headers["location"]
        assert "bugdet_review_token=s3cret" in link.headers["set-cookie"] and "HttpOnly" in link.headers["set-cookie"]
        assert browser.get("/api/info").status_code == 200  # the cookie alone now authenticates
        assert browser.post("/api/masks/decision", json={"mask_ids": [2], "action": "keep", "who": WHO}).status_code == 200


def test_two_testers_writing_at_once_lose_nothing(project):
    """Two app instances (two server processes' worth of connections) record decisions concurrently."""
    clients = {who: TestClient(create_app(project)) for who in ("tester-a", "tester-b")}
    mask_ids = [m["mask_id"] for m in clients["tester-a"].get("/api/map").json()["points"]][:20]
    acknowledged: dict[str, list[int]] = {who: [] for who in clients}
    errors: list[str] = []

    def work(who: str) -> None:
        for i, mask_id in enumerate(mask_ids):
            res = clients[who].post("/api/masks/decision", json={
                "mask_ids": [mask_id], "action": "keep" if i % 2 else "reject", "who": who})
            if res.status_code != 200:
                errors.append(res.text)
            else:
                acknowledged[who].extend(res.json()["decisions"])

    threads = [threading.Thread(target=work, args=(who,)) for who in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    stored = {d.id: d for d in list_decisions(project, scope="mask")}
    for who, ids in acknowledged.items():
        assert len(ids) == len(mask_ids)
        assert [stored[i].mask_id for i in ids] == mask_ids and {stored[i].who for i in ids} == {who}


def test_flag_session_round_trip_and_import_command(built, tmp_path):
    project, run = built
    session = write_flag_session(run, tmp_path / "flags")
    again = import_flag_session(project, session)  # the same playtest: nothing new
    assert again.flags_added == 0 and again.flags_existing == 5

    fresh = Project.open(tmp_path / "fresh", ["name=fresh"], create=True)
    assert main(["review", "import-flags", str(session), "--project", str(fresh.root)]) is None
    conn = fresh.connect()
    try:
        flags = list_flags(conn)
        frames = conn.execute("SELECT split, width FROM frames").fetchall()
    finally:
        conn.close()
    flagged = [f for f in run.frames if f.flagged.get("missing_texture")]
    assert len(flags) == len(flagged) == 5 and {r["split"] for r in frames} == {"train"} and frames[0]["width"] == 160
    by_index = {f.frame_index: f for f in flags}
    for record in flagged:
        assert by_index[record.index].score == pytest.approx(record.scores["missing_texture"])
        assert by_index[record.index].box == pytest.approx(list(record.boxes["missing_texture"]))


def test_cli_warns_about_public_host_without_token_and_reports_a_busy_port(project, capsys):
    with socket.socket() as busy:
        busy.bind(("0.0.0.0", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(SystemExit) as exit_info:
            main(["review", "--project", str(project.root), "--host", "0.0.0.0", "--port", str(port)])
    err = capsys.readouterr().err
    assert exit_info.value.code != 0
    assert "without --token" in err and f"cannot listen on 0.0.0.0:{port}" in err


def test_cross_site_form_posts_and_foreign_host_names_are_refused(project):
    with TestClient(create_app(project)) as client:
        form = client.post("/api/masks/decision", content=b'{"mask_ids": [1], "action": "reject", "who": "x"}',
                           headers={"content-type": "text/plain"})
        assert form.status_code == 400 and "Content-Type: application/json" in form.json()["error"]
    with TestClient(create_app(project, allowed_hosts=["127.0.0.1", "localhost"]), base_url="http://evil.example") as client:
        assert client.get("/api/info").status_code == 400
    with TestClient(create_app(project, allowed_hosts=["127.0.0.1", "localhost"]), base_url="http://localhost") as client:
        assert client.get("/api/info").status_code == 200
