"""``bugdet bench pipeline``: throughput of the mining pipeline's stages, written as JSON.

* ``masks_per_s``: segmentation throughput from :mod:`bugdet.bench.segment.speed` (its
  ``measure_segmentation``, which ``measure_masks_per_s`` wraps, called once so the backend and
  counts come along): default backend, automatic mode, playtest-world park frames at 320x240.
* ``embed_torch_ips`` / ``embed_onnx_ips``: image-tower throughput of open_clip ViT-S-32
  (UNPRETRAINED random init: weights do not change the cost) on the same preprocessed batches of
  real mask crops, eager torch (inference mode, fused attention fast path) vs onnxruntime (all
  graph optimisations), same thread count, measured interleaved in one process; median of runs.
* ``faiss_kmeans_s`` / ``sklearn_kmeans_s``: Lloyd k-means on synthetic clustered data (Gaussian
  blobs, said so in the JSON) at equal settings: same k, same initial centroids (one k-means++
  init, no restarts), same iteration count (sklearn ``tol=0``; its actual ``n_iter_`` is
  reported), same threads. ``inertia_ratio`` = FAISS / sklearn inertia, both recomputed the same
  way from the final centroids.

Each stage is measured in its own freshly spawned process: OpenCV, PyTorch and FAISS each keep a
thread pool whose workers spin for a while after use, and measured back to back in one process
they slow each other down (eager torch lost 2-3x right after OpenCV segmentation here).
"""

from __future__ import annotations

import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import typer


def _playtest_frames(n: int, width: int = 320, height: int = 240) -> list[np.ndarray]:
    from bugdet.playtest.session import PlaytestSession, PlaytestSpec

    session = PlaytestSession(PlaytestSpec(scene="park", seed=11, frames=n, width=width, height=height))
    return [f.rgb for f in session.frames()]


def measure_masks(frames: list[np.ndarray]) -> dict[str, Any]:
    from bugdet.bench.segment.speed import measure_segmentation

    result = measure_segmentation(frames)
    return {"masks_per_s": result["masks_per_s"], "segment_backend": result["backend"],
            "segment_frames": result["frames"], "segment_masks": result["masks"]}


def segmentation_stage(n_frames: int, n_crops: int) -> tuple[dict[str, Any], list[np.ndarray]]:
    """Render playtest frames, time segmentation, and cut the mask crops the embedding stage uses."""
    frames = _playtest_frames(n_frames)
    return measure_masks(frames), _crops(frames, n_crops)


def _crops(frames: list[np.ndarray], count: int, seed: int = 0) -> list[np.ndarray]:
    """Mask crops from the segmenter's masks of ``frames`` (cycled to ``count``)."""
    from bugdet.segment.automatic import AutomaticMaskGenerator
    from bugdet.segment.config import SegmentConfig
    from bugdet.segment.errors import EmptyFrameError, NoMaskError
    from bugdet.segment.factory import build_predictor
    from bugdet.segment.masks import mask_crop

    cfg = SegmentConfig()
    generator = AutomaticMaskGenerator(build_predictor(cfg), cfg)
    crops: list[np.ndarray] = []
    for rgb in frames:
        try:
            crops.extend(mask_crop(rgb, candidate.mask) for candidate in generator.generate(rgb))
        except (EmptyFrameError, NoMaskError):  # nothing to crop in this frame
            continue
        if len(crops) >= count:
            break
    if not crops:
        crops = list(frames)
    return [crops[i % len(crops)] for i in range(count)]


def measure_embedding(crops: list[np.ndarray], repeats: int, threads: int) -> dict[str, Any]:
    import tempfile

    import torch

    from bugdet.embed.base import to_pixel_batch
    from bugdet.embed.clip_onnx import OnnxClipEmbedder
    from bugdet.embed.clip_torch import TorchClipEmbedder
    from bugdet.embed.config import EmbedConfig
    from bugdet.embed.models import build_open_clip_model, resolve_model_spec

    torch.set_num_threads(threads)
    spec = resolve_model_spec(EmbedConfig(model="ViT-S-32", pretrained="none"))
    model, tokenizer = build_open_clip_model(spec)
    eager = TorchClipEmbedder(spec, model=model, tokenizer=tokenizer, threads=threads)
    with tempfile.TemporaryDirectory() as cache:
        onnx = OnnxClipEmbedder(spec, Path(cache), threads=threads, model=model, tokenizer=tokenizer)
        batch = len(crops)
        pixels = to_pixel_batch(crops, eager.image_size, eager.mean, eager.std)
        parity = float(np.abs(eager.forward_pixels(pixels) - onnx.forward_pixels(pixels)).max())
        times: dict[str, list[float]] = {"torch": [], "onnx": []}
        for _ in range(repeats):  # interleaved, so load from other processes hits both alike
            for name, fn in (("torch", eager.forward_pixels), ("onnx", onnx.forward_pixels)):
                start = time.perf_counter()
                fn(pixels)
                times[name].append(time.perf_counter() - start)
    torch_ips = batch / statistics.median(times["torch"][1:] or times["torch"])
    onnx_ips = batch / statistics.median(times["onnx"][1:] or times["onnx"])
    return {"embed_torch_ips": torch_ips, "embed_onnx_ips": onnx_ips, "embed_onnx_speedup": onnx_ips / torch_ips,
            "embed_model": "open_clip ViT-S-32, UNPRETRAINED random init (weights do not change cost)",
            "embed_batch": batch, "embed_repeats": repeats, "embed_parity_max_abs": parity,
            "embed_device": "cpu", "onnx_providers": ["CPUExecutionProvider"]}


def _inertia(x: np.ndarray, centroids: np.ndarray) -> float:
    import faiss

    index = faiss.IndexFlatL2(x.shape[1])
    index.add(np.ascontiguousarray(centroids, np.float32))
    d, _ = index.search(x, 1)
    return float(d.sum(dtype=np.float64))


def measure_kmeans(n: int, d: int, k: int, niter: int, threads: int, seed: int = 0) -> dict[str, Any]:
    import faiss
    from sklearn.cluster import KMeans
    from threadpoolctl import threadpool_limits

    from bugdet.cluster.kmeans import faiss_kmeans, kmeans_plus_plus

    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, d)).astype(np.float32)
    x = (centres[rng.integers(k, size=n)] + rng.normal(scale=0.6, size=(n, d))).astype(np.float32)
    init = kmeans_plus_plus(x, k, seed)

    faiss.omp_set_num_threads(threads)
    start = time.perf_counter()
    fk = faiss_kmeans(x, k, niter=niter, seed=seed, init_centroids=init)  # GPU when faiss-gpu sees one
    faiss_s = time.perf_counter() - start

    with threadpool_limits(limits=threads):
        start = time.perf_counter()
        sk = KMeans(n_clusters=k, init=init, n_init=1, max_iter=niter, tol=0.0, algorithm="lloyd",
                    random_state=seed).fit(x)
        sklearn_s = time.perf_counter() - start
    faiss_inertia, sklearn_inertia = _inertia(x, fk.centroids), _inertia(x, sk.cluster_centers_.astype(np.float32))
    from bugdet.device import faiss_gpu_count

    return {"faiss_kmeans_s": faiss_s, "faiss_device": "gpu" if faiss_gpu_count() else "cpu", "sklearn_kmeans_s": sklearn_s, "kmeans_speedup": sklearn_s / faiss_s,
            "inertia_ratio": faiss_inertia / sklearn_inertia, "faiss_inertia": faiss_inertia,
            "sklearn_inertia": sklearn_inertia, "sklearn_n_iter": int(sk.n_iter_), "kmeans_niter": niter,
            "kmeans_n": n, "kmeans_d": d, "kmeans_k": k,
            "kmeans_data": f"synthetic: {k} Gaussian blobs (unit-normal centres, sigma 0.6) in {d}-d, float32",
            "kmeans_init": "one shared greedy k-means++ init, no restarts (n_init=1)"}


def _isolated(fn: Any, *args: Any, env: dict[str, str] | None = None) -> Any:
    """Run ``fn(*args)`` in a freshly spawned process (see the module docstring for why), with
    ``env`` added to its environment (read by libraries when they load, so it must be set before)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    saved = {k: os.environ.get(k) for k in env or {}}
    os.environ.update(env or {})
    try:
        with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
            return pool.submit(fn, *args).result()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def run_pipeline_bench(quick: bool = False, threads: int = 0) -> dict[str, Any]:
    threads = threads or (os.cpu_count() or 1)
    results: dict[str, Any] = {"quick": quick, "threads": threads, "cpu_count": os.cpu_count()}
    segmentation, crops = _isolated(segmentation_stage, 4 if quick else 16, 16 if quick else 32)
    results.update(segmentation)
    results.update(_isolated(measure_embedding, crops, 4 if quick else 8, threads))
    n, k, niter = (20_000, 50, 10) if quick else (100_000, 100, 20)
    # FAISS and scikit-learn both run on libgomp; its default spin-waiting costs FAISS (many short
    # parallel regions per iteration) up to 4x on a machine whose cores other processes also use.
    # Passive waiting is set for both alike, unless the caller chose a policy.
    policy = {"OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}
    results.update(_isolated(measure_kmeans, n, 512, k, niter, threads, env=policy))
    results["kmeans_omp_wait_policy"] = policy["OMP_WAIT_POLICY"]
    return results


def register(bench_app: typer.Typer) -> None:
    @bench_app.command("pipeline")
    def bench_pipeline(
        json_path: Path = typer.Option(..., "--json", help="Where to write the measurements."),
        quick: bool = typer.Option(False, "--quick", help="Smaller sizes (20k points, fewer frames and repeats)."),
        threads: int = typer.Option(0, "--threads", min=0, help="Threads for every library; 0 = all cores."),
    ) -> None:
        """Segmentation masks/s, CLIP embedding torch vs ONNX, FAISS vs scikit-learn k-means."""
        results = run_pipeline_bench(quick, threads)
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        typer.echo(json.dumps({k: (float(f"{v:.4g}") if isinstance(v, float) else v) for k, v in results.items()}, indent=1))
