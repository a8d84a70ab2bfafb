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


def measure_fps(width: int, height: int, frames: int, scene: str = "park", prevalence: float = 0.01) -> tuple[float, float]:
    """(wall-clock fps, CPU-time fps) of one session; the second is what the process itself spent,
    which stays meaningful on a machine shared with other jobs."""
    from bugdet.playtest.session import PlaytestSession, PlaytestSpec

    spec = PlaytestSpec(scene=scene, seed=7, frames=frames, width=width, height=height, prevalence=prevalence, bugs=BUG_TYPES)
    session = PlaytestSession(spec)  # world build is excluded: it happens once per session
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in session.frames():
        pass
    return frames / (time.perf_counter() - wall), frames / (time.process_time() - cpu)


def register(bench_app: typer.Typer) -> None:
    @bench_app.command("playtest")
    def bench_playtest(
        json_path: Path = typer.Option(..., "--json", help="Where to write the measurements."),
        frames: int = typer.Option(600, "--frames", help="Frames per measurement."),
    ) -> None:
        """Playtest-world generation fps (colour + ground-truth passes) at 320x240 and 640x480."""
        results = {}
        for w, h in ((320, 240), (640, 480)):
            scenes = ("park", "indoor")
            measured = {scene: measure_fps(w, h, frames, scene) for scene in scenes}
            # frames over total time across both scenes (not a mean of rates)
            results[f"fps_{w}x{h}"] = round(len(scenes) / sum(1.0 / measured[s][0] for s in scenes), 1)
            results[f"cpu_fps_{w}x{h}"] = round(len(scenes) / sum(1.0 / measured[s][1] for s in scenes), 1)
            results[f"fps_{w}x{h}_by_scene"] = {s: round(measured[s][0], 1) for s in scenes}
            results[f"cpu_fps_{w}x{h}_by_scene"] = {s: round(measured[s][1], 1) for s in scenes}
        results["frames_per_measurement"] = frames
        results["prevalence"] = 0.01
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        typer.echo(json.dumps(results, sort_keys=True))
