"""``bugdet bench playtest``: frame generation speed, ground-truth passes included.

Measures :class:`PlaytestSession` frames per second (player, animation, colour + ID passes, and
for bug frames the reference pass and the truth masks) at 320x240 and 640x480, without disk I/O,
which depends on the machine's storage rather than on the generator.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import typer

from bugdet.ingest.session_format import BUG_TYPES


def measure_fps(width: int, height: int, frames: int, scene: str = "park", prevalence: float = 0.01) -> float:
    from bugdet.playtest.session import PlaytestSession, PlaytestSpec

    spec = PlaytestSpec(scene=scene, seed=7, frames=frames, width=width, height=height, prevalence=prevalence, bugs=BUG_TYPES)
    session = PlaytestSession(spec)  # world build is excluded: it happens once per session
    start = time.perf_counter()
    for _ in session.frames():
        pass
    return frames / (time.perf_counter() - start)


def register(bench_app: typer.Typer) -> None:
    @bench_app.command("playtest")
    def bench_playtest(
        json_path: Path = typer.Option(..., "--json", help="Where to write the measurements."),
        frames: int = typer.Option(600, "--frames", help="Frames per measurement."),
    ) -> None:
        """Playtest-world generation fps (colour + ground-truth passes) at 320x240 and 640x480."""
        results = {}
        for w, h in ((320, 240), (640, 480)):
            fps = [measure_fps(w, h, frames, scene) for scene in ("park", "indoor")]
            results[f"fps_{w}x{h}"] = round(sum(fps) / len(fps), 1)
            results[f"fps_{w}x{h}_by_scene"] = {"park": round(fps[0], 1), "indoor": round(fps[1], 1)}
        results["frames_per_measurement"] = frames
        results["prevalence"] = 0.01
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        typer.echo(json.dumps(results, sort_keys=True))
