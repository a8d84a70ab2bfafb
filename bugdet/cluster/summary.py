"""What people look at after a clustering run: exemplar contact sheet, 2-D map, one HTML page.

Everything is drawn with OpenCV and written next to the run (``clusters/run-<id>/``). The HTML page
embeds both PNGs as data URIs and uses no scripts, fonts or CDNs, so it opens from a file share or
a CI artifact without network access.
"""

from __future__ import annotations

import base64
import colorsys
import html
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from bugdet.cluster.runs import ClusterRun, get_run, run_members
from bugdet.embed.base import letterbox_square
from bugdet.embed.store import get_model, load_embeddings
from bugdet.imageio import read_rgb, write_rgb
from bugdet.project import Project
from bugdet.segment.masks import iter_masks, mask_crop
from bugdet.store.frames import get_frame

THUMB = 64
LABEL_W = 150
MAP_SIZE = (720, 540)
MAP_POINTS = 5000


@dataclass
class SummaryPaths:
    contact_sheet: Path
    embedding_map: Path
    html: Path


def palette(n: int) -> list[tuple[int, int, int]]:
    """n distinguishable RGB colours (evenly spaced hues, two lightness bands)."""
    out = []
    for i in range(max(n, 1)):
        r, g, b = colorsys.hls_to_rgb((i * 0.618034) % 1.0, 0.45 if i % 2 else 0.6, 0.85)
        out.append((int(r * 255), int(g * 255), int(b * 255)))
    return out


def _text(img: np.ndarray, text: str, org: tuple[int, int], scale: float = 0.4, colour=(30, 30, 30)) -> None:
    cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, colour, 1, cv2.LINE_AA)


def contact_sheet(project: Project, run: ClusterRun, per_cluster: int) -> np.ndarray:
    """One row per cluster: its ``per_cluster`` members nearest the centroid (kept ones first)."""
    conn = project.connect()
    try:
        members = run_members(conn, run.id)
        chosen: dict[int, list[int]] = {}
        for c in range(run.k):
            ms = sorted((m for m in members if m.cluster == c), key=lambda m: (m.state != "kept", -m.similarity))
            chosen[c] = [m.mask_id for m in ms[:per_cluster]]
        wanted = {i for ids in chosen.values() for i in ids}
        records = {m.id: m for m in iter_masks(conn) if m.id in wanted}
        frames = {fid: get_frame(conn, fid) for fid in {r.frame_id for r in records.values()}}
    finally:
        conn.close()
    images: dict[int, np.ndarray] = {}
    for fid, frame in frames.items():
        images[fid] = read_rgb(project.root / frame.path)
    sizes = np.bincount([m.cluster for m in members], minlength=run.k)
    kept = np.bincount([m.cluster for m in members if m.state == "kept"], minlength=run.k)
    colours = palette(run.k)
    sheet = np.full((run.k * (THUMB + 4) + 4, LABEL_W + per_cluster * (THUMB + 4) + 4, 3), 245, np.uint8)
    for c in range(run.k):
        y = 4 + c * (THUMB + 4)
        cv2.rectangle(sheet, (4, y), (14, y + THUMB), colours[c], -1)
        _text(sheet, f"cluster {c}", (20, y + 20), 0.45)
        _text(sheet, f"{sizes[c]} masks", (20, y + 38))
        _text(sheet, f"{kept[c]} in bank", (20, y + 54))
        for j, mask_id in enumerate(chosen[c]):
            rec = records[mask_id]
            crop = mask_crop(images[rec.frame_id], rec.decode())
            x = LABEL_W + j * (THUMB + 4)
            sheet[y:y + THUMB, x:x + THUMB] = letterbox_square(crop, THUMB)
    return sheet


def map_sample(count: int, seed: int = 0, limit: int = MAP_POINTS) -> np.ndarray:
    """Sorted indices of the points a map shows: all ``count`` of them, or ``limit`` drawn with ``seed``.

    Seeded, so the summary image and the review app's map show the same masks for a run.
    """
    if count <= limit:
        return np.arange(count)
    return np.sort(np.random.default_rng(seed).choice(count, limit, replace=False))


def map_coordinates(vectors: np.ndarray, seed: int = 0) -> np.ndarray:
    """2-D map coordinates of embedding rows: PCA to two axes, each scaled to 0..1 (N x 2, float).

    The one projection behind every embedding map (the summary's PNG, the review app's canvas),
    so a tester sees the same picture in both. Fewer than two points sit at the origin.
    """
    from sklearn.decomposition import PCA

    vectors = np.asarray(vectors, np.float32)
    if len(vectors) < 2:
        return np.zeros((len(vectors), 2))
    xy = PCA(n_components=2, random_state=seed).fit_transform(vectors)
    lo, hi = xy.min(0), xy.max(0)
    return (xy - lo) / np.maximum(hi - lo, 1e-9)


def embedding_map(project: Project, run: ClusterRun, seed: int = 0) -> np.ndarray:
    """The run's embeddings on :func:`map_coordinates`, points coloured by cluster (sampled to MAP_POINTS)."""
    conn = project.connect()
    try:
        members = {m.mask_id: m for m in run_members(conn, run.id)}
        ids, vectors = load_embeddings(project.root, conn, run.model_key, "mask", members)
    finally:
        conn.close()
    w, h = MAP_SIZE
    canvas = np.full((h, w, 3), 255, np.uint8)
    keep = map_sample(len(ids), seed)
    ids = ids[keep]
    px = (40 + map_coordinates(vectors[keep], seed) * np.array([w - 200, h - 80])).astype(int)
    colours = palette(run.k)
    for (x, y), mask_id in zip(px, ids):
        m = members[int(mask_id)]
        cv2.circle(canvas, (int(x), int(y)), 3 if m.state == "kept" else 2, colours[m.cluster], -1, cv2.LINE_AA)
    _text(canvas, f"PCA of {len(ids)} mask embeddings, run {run.id}", (10, 20), 0.5)
    for c in range(min(run.k, 24)):
        y = 50 + c * 18
        cv2.circle(canvas, (w - 140, y - 4), 5, colours[c], -1)
        _text(canvas, f"cluster {c}", (w - 128, y))
    return canvas


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def write_summary(project: Project, run_id: int | None = None) -> SummaryPaths:
    """Contact sheet, embedding map and an HTML page (images inline) for a run (default: latest)."""
    conn = project.connect()
    try:
        run = get_run(conn, run_id)
        info = get_model(conn, run.model_key)
        members = run_members(conn, run.id)
    finally:
        conn.close()
    cfg = project.config.filter.cluster
    out = project.stage_dir("clusters") / f"run-{run.id}"
    paths = SummaryPaths(out / "contact_sheet.png", out / "embedding_map.png", out / "index.html")
    write_rgb(paths.contact_sheet, contact_sheet(project, run, cfg.exemplars_per_cluster))
    write_rgb(paths.embedding_map, embedding_map(project, run, cfg.seed))

    label = info.label if info else run.model_key
    warning = "" if (info is None or info.pretrained) else (
        "<p class=warn>UNPRETRAINED model: these embeddings come from random weights; clusters group "
        "pixel statistics, not meaning.</p>")
    sizes = np.bincount([m.cluster for m in members], minlength=run.k)
    counts = {s: np.bincount([m.cluster for m in members if m.state == s], minlength=run.k) for s in ("kept", "capped", "duplicate")}
    rows = "\n".join(
        f"<tr><td>{c}</td><td>{sizes[c]}</td><td>{counts['kept'][c]}</td><td>{counts['capped'][c]}</td>"
        f"<td>{counts['duplicate'][c]}</td></tr>" for c in range(run.k))
    params = html.escape(", ".join(f"{k}={v}" for k, v in sorted(run.params.items()) if k != "k_scores"))
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>bugdet clusters, run {run.id}</title>
<style>body{{font-family:sans-serif;margin:2em}} table{{border-collapse:collapse}}
td,th{{border:1px solid #bbb;padding:2px 8px;text-align:right}} .warn{{color:#b00;font-weight:bold}}</style></head>
<body><h1>Mask clusters, run {run.id}</h1>
<p>Model: {html.escape(label)}. {run.n_points} masks, k-means k={run.k_fine}, {run.k} clusters after merging.</p>
{warning}<p>Parameters: {params}</p>
<h2>Exemplars (nearest the centroid, bank members first)</h2>
<img alt="contact sheet" src="{_data_uri(paths.contact_sheet)}">
<h2>Embedding map</h2>
<img alt="embedding map" src="{_data_uri(paths.embedding_map)}">
<h2>Clusters</h2>
<table><tr><th>cluster</th><th>masks</th><th>in bank</th><th>capped</th><th>duplicates</th></tr>
{rows}
</table></body></html>
"""
    tmp = paths.html.with_name(".index.html.tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(paths.html)
    return paths
