"""``bugdet export`` (trained detector -> model package) and ``bugdet serve`` (the gRPC service)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from bugdet.cli.common import ProjectOption, SetOption, console, open_project
from bugdet.errors import InputError


def _parse_thresholds(items: List[str]) -> dict[str, float]:
    result = {}
    for item in items:
        bug, sep, value = item.partition("=")
        try:
            if not sep:
                raise ValueError
            result[bug.strip()] = float(value)
        except ValueError:
            raise InputError(f"--threshold {item!r}: expected BUG_TYPE=PROBABILITY, e.g. missing_texture=0.6") from None
    return result


def load_checkpoint(path: Path) -> tuple[object, dict]:
    """The detector and the checkpoint's extras (thresholds, metrics, training data summary).

    Reads the training stage's checkpoints (``bugdet.detector/1``), or any pickled detector module
    / dict holding one under ``model``, so a detector trained outside bugdet can be packaged too.
    """
    import torch

    from bugdet.detect.model import CHECKPOINT_FORMAT
    from bugdet.detect.model import load_checkpoint as load_trained

    if not path.is_file():
        raise InputError(f"{path}: no such detector checkpoint (run `bugdet train` first, or pass --checkpoint)")
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is a bad file to the user
        raise InputError(f"{path}: not a readable torch checkpoint: {exc}") from None
    if isinstance(loaded, dict) and loaded.get("format") == CHECKPOINT_FORMAT:
        detector, payload = load_trained(path)
        metrics = {k: payload[k] for k in ("best_val_pr_auc", "best_epoch", "calibrated") if k in payload}
        return detector, {"thresholds": payload.get("thresholds"), "training_data": payload.get("data"), "metrics": metrics}
    if isinstance(loaded, dict):
        model = loaded.get("model") or loaded.get("detector")
        if model is None:
            raise InputError(f"{path}: checkpoint dict has no 'model' entry")
        return model, loaded
    return loaded, {}


def newest_checkpoint(project_root: Path) -> Path:
    candidates = sorted((project_root / "models").glob("*/detector.pt"), key=lambda p: p.stat().st_mtime)
    if not candidates:
        raise InputError(f"{project_root}: no trained detector under models/*/detector.pt (run `bugdet train`, or pass --checkpoint)")
    return candidates[-1]


def export(
    project_dir: Path = ProjectOption,
    checkpoint: Optional[Path] = typer.Option(None, "--checkpoint", help="Detector checkpoint (default: export.checkpoint in the project)."),
    models_dir: Optional[Path] = typer.Option(None, "--models-dir", help="Where to write the package (default: export.models_dir)."),
    name: Optional[str] = typer.Option(None, "--name", help="Model name (export.name)."),
    version: Optional[str] = typer.Option(None, "--version", help="Package version (default: UTC timestamp)."),
    thresholds: Optional[List[str]] = typer.Option(None, "--threshold", help="BUG_TYPE=P decision threshold (repeatable; default from the checkpoint, else 0.5)."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Also write the export report as JSON here."),
    overrides: Optional[List[str]] = SetOption,
) -> None:
    """Export the trained detector to an ONNX model package (with a torch/ONNX parity check)."""
    from bugdet.export.package import export_package
    from bugdet.imageio import read_rgb
    from bugdet.store.frames import iter_frames

    project = open_project(project_dir, overrides)
    cfg = project.config.export
    model, extras = load_checkpoint(checkpoint or (project.root / cfg.checkpoint if cfg.checkpoint else newest_checkpoint(project.root)))
    conn = project.connect()
    try:
        rows = list(iter_frames(conn, split="val"))[: cfg.calibration_frames]
        if len(rows) < cfg.calibration_frames:
            rows += [r for r in iter_frames(conn) if r.split != "val"][: cfg.calibration_frames - len(rows)]
    finally:
        conn.close()
    if not rows:
        raise InputError(f"{project.root}: the project has no frames for the parity check (run `bugdet ingest`)")
    frames = [read_rgb(project.root / row.path) for row in rows]
    chosen = dict(extras.get("thresholds") or {})
    chosen.update(_parse_thresholds(thresholds or []))
    result = export_package(
        model, frames, models_dir or project.root / cfg.models_dir, name=name or cfg.name, version=version,
        thresholds=chosen, training_data=extras.get("training_data"), metrics=extras.get("metrics"),
        tolerance=cfg.tolerance, opset=cfg.opset, exporter=cfg.exporter,
    )
    report = {"package": str(result.path), "exporter": result.exporter, "parity": result.parity.as_dict()}
    console.print(f"wrote {result.path} (parity max abs diff {result.parity.max_abs_diff:.2e} on {result.parity.frames} frames)")
    if json_out:
        json_out.write_text(json.dumps(report, indent=2) + "\n")
    typer.echo(json.dumps(report))


def serve(
    models: Path = typer.Option(..., "--models", help="Directory of model packages (watched for new ones)."),
    port: int = typer.Option(50051, "--port", help="gRPC port (0 = pick a free one and print it)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind; 0.0.0.0 to serve the network."),
    metrics_port: Optional[int] = typer.Option(None, "--metrics-port", help="Serve Prometheus metrics on http://HOST:PORT/metrics."),
    http_port: Optional[int] = typer.Option(None, "--http-port", min=0, help="Also serve KServe v2 over HTTP/REST on this port (0 = any free one)."),
    max_batch: int = typer.Option(8, "--max-batch", min=1, help="Largest dynamic batch (CPU: 4-8; GPU: larger)."),
    max_queue_delay_ms: float = typer.Option(0.0, "--max-queue-delay-ms", min=0, help="How long a partial batch waits for more frames."),
    max_queue: int = typer.Option(256, "--max-queue", min=1, help="Frames queued before RESOURCE_EXHAUSTED."),
    max_message_mb: int = typer.Option(64, "--max-message-mb", min=1, help="Largest request or response message."),
    max_pixels: int = typer.Option(4096 * 4096, "--max-pixels", min=1, help="Largest frame in pixels, from its header (checked before decoding)."),
    max_request_pixels: int = typer.Option(64 * 1920 * 1080, "--max-request-pixels", min=1, help="Pixel budget of all frames in one request."),
    workers: int = typer.Option(32, "--workers", min=1, help="gRPC handler threads."),
    device: str = typer.Option("auto", "--device", help="auto (CUDA when onnxruntime-gpu and a GPU exist), cpu or cuda."),
    intra_op_threads: int = typer.Option(0, "--intra-op-threads", min=0, help="onnxruntime threads per inference (0 = all cores)."),
    token: Optional[str] = typer.Option(None, "--token", envvar="BUGDET_SERVE_TOKEN", help="Require 'authorization: Bearer TOKEN' (env BUGDET_SERVE_TOKEN)."),
    tls_cert: Optional[Path] = typer.Option(None, "--tls-cert", help="PEM certificate chain: serve TLS."),
    tls_key: Optional[Path] = typer.Option(None, "--tls-key", help="PEM private key for --tls-cert."),
    tls_client_ca: Optional[Path] = typer.Option(None, "--tls-client-ca", help="PEM CA bundle: require client certificates (mTLS)."),
    poll_s: float = typer.Option(2.0, "--poll-s", min=0.1, help="Seconds between scans of the models directory."),
    flag_window: int = typer.Option(1, "--flag-window", min=1, metavar="N", help="DetectStream: flag a bug type when --flag-window-min of the last N frames of a session were over its threshold (1 = off; on, a bug is flagged up to N-1 frames later)."),
    flag_window_min: int = typer.Option(1, "--flag-window-min", min=1, metavar="K", help="Frames of the --flag-window that must be over the threshold (1..N)."),
) -> None:
    """Serve model packages over gRPC (bugdet.v1, KServe v2 / Open Inference Protocol, health, reflection) and optionally KServe v2 over HTTP."""
    from service.config import ServerConfig, TlsConfig
    from service.server import run_forever

    if not models.is_dir():
        raise InputError(f"{models}: no such models directory (write packages into it with `bugdet export`)")
    if flag_window_min > flag_window:
        raise InputError(f"--flag-window-min {flag_window_min} exceeds --flag-window {flag_window}")
    tls = None
    if tls_cert or tls_key:
        if not (tls_cert and tls_key):
            raise InputError("--tls-cert and --tls-key go together")
        tls = TlsConfig(cert=tls_cert, key=tls_key, client_ca=tls_client_ca)
    config = ServerConfig(
        models_dir=models, host=host, port=port, metrics_port=metrics_port, http_port=http_port, max_batch=max_batch,
        max_queue_delay_ms=max_queue_delay_ms, max_queue=max_queue, max_message_bytes=max_message_mb << 20,
        workers=workers, device=device, intra_op_threads=intra_op_threads, token=token, tls=tls, poll_s=poll_s,
        max_pixels=max_pixels, max_request_pixels=max_request_pixels, flag_window=flag_window, flag_window_min=flag_window_min,
    )
    run_forever(config, announce=lambda line: console.print(line))


def register(app: typer.Typer) -> None:
    app.command("export")(export)
    app.command("serve")(serve)
