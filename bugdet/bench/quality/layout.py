"""Which captures the quality benchmark records for a world, and how.

A *data layout* is what differs between worlds in the benchmark: the sessions each split is made
of (held-out seeds for the playtest world, held-out maps for OpenArena), how one is recorded,
which bug types the world can show, and how the mask bank is segmented (engine object IDs where
the world writes them, the OpenCV grid otherwise). Everything after ingest is the same pipeline
for every world.

Splits: ``train`` is the unlabeled pool (objective targets, mask bank, weak negatives),
``labelpool`` is where the simulated tester finds the k labeled bugs, ``val`` picks epochs and
thresholds, ``test`` is scored once.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bugdet.errors import InputError
from bugdet.progress import Progress

if TYPE_CHECKING:
    from bugdet.bench.quality.protocol import QualitySettings

WORLDS: tuple[str, ...] = ("playtest", "openarena")


@dataclass(frozen=True)
class SessionSpec:
    """One capture of the benchmark: ``scene`` is the playtest scene or the OpenArena map."""

    split: str
    scene: str
    seed: int
    frames: int
    prevalence: float
    weapon: str = ""  # playtest only: the weapon the session holds

    @property
    def name(self) -> str:
        """Everything that shapes the recording, so a capture on disk is reused only as itself."""
        if self.weapon:
            return f"{self.split}-{self.scene}-{self.seed}-{self.weapon}-{self.frames}f-{self.prevalence:g}p"
        return f"{self.split}-{self.scene}-{self.seed}-{self.frames}f-{self.prevalence:g}p"


def spread(total: int, parts: int) -> list[int]:
    """``total`` frames over ``parts`` sessions, the first ones taking the remainder."""
    return [total // parts + (1 if j < total % parts else 0) for j in range(parts)]


class DataLayout(ABC):
    """The world-specific half of the benchmark's data (see the module docstring)."""

    world: str = ""
    bug_types: tuple[str, ...] = ()
    segment_backend: str = "engine"  # how the mask bank's train frames are segmented
    weapon_source: str | None = None  # forced on the targets' weapon masks (None: the settings')

    @abstractmethod
    def sessions(self, s: QualitySettings) -> list[SessionSpec]:
        """Every capture session the benchmark needs, per split."""

    @abstractmethod
    def captures_dir(self, workdir: Path, s: QualitySettings) -> Path:
        """Where this world's captures are kept in the workdir."""

    @abstractmethod
    def record(self, missing: Sequence[SessionSpec], captures: Path, s: QualitySettings, progress: Progress) -> None:
        """Record the sessions not yet on disk."""

    def describe(self, s: QualitySettings) -> dict[str, Any]:
        """Named in the benchmark's JSON: how the splits were made."""
        by_split: dict[str, dict[str, Any]] = {}
        for x in self.sessions(s):
            row = by_split.setdefault(x.split, {"scenes": [], "frames": 0, "prevalence": x.prevalence})
            if x.scene not in row["scenes"]:
                row["scenes"].append(x.scene)
            row["frames"] += x.frames
        return {"world": self.world, "splits": by_split, "segment_backend": self.segment_backend}


class PlaytestLayout(DataLayout):
    """The Panda3D playtest world: splits by seed range, scene variants in test, weapons cycled."""

    world = "playtest"
    segment_backend = "engine"

    @property
    def bug_types(self) -> tuple[str, ...]:  # type: ignore[override]
        from bugdet.playtest.bugs import BUG_TYPES

        return tuple(BUG_TYPES)

    def sessions(self, s: QualitySettings) -> list[SessionSpec]:
        """``sessions_per_split`` sessions per scene and split.

        A split's frames are spread over several short sessions rather than one long one, so every
        split sees every weapon (cycled over the sessions) and many layouts and variants: with one
        session per split, a test weapon that no training capture held decided the whole result.
        The unlabeled pool covering all of the game's weapons is what a studio's footage gives;
        which of them the k labeled bugs show is left to the draw.
        """
        from bugdet.playtest.split import TEST_START, VAL_START
        from bugdet.playtest.viewmodel import WEAPONS

        plan = [("train", 11, s.unlabeled_frames, s.prevalence),
                ("labelpool", 21, s.label_pool_frames, s.label_pool_prevalence),
                ("val", VAL_START + 11, s.val_frames, s.val_prevalence),
                ("test", TEST_START + 11, s.test_frames, s.prevalence)]
        n = max(1, s.sessions_per_split)
        out = []
        for split, base, frames, prevalence in plan:
            for i, scene in enumerate(s.scenes):
                for j, per_session in enumerate(spread(frames, n)):
                    weapon = WEAPONS[(i + j) % len(WEAPONS)]
                    out.append(SessionSpec(split, scene, base + i + 100 * j, per_session, prevalence, weapon))
        return out

    def captures_dir(self, workdir: Path, s: QualitySettings) -> Path:
        return workdir / "captures" / f"{s.width}x{s.height}"

    def record(self, missing: Sequence[SessionSpec], captures: Path, s: QualitySettings, progress: Progress) -> None:
        from bugdet.playtest.recorder import record_many
        from bugdet.playtest.session import PlaytestSpec

        record_many([(PlaytestSpec(scene=x.scene, seed=x.seed, frames=x.frames, width=s.width, height=s.height,
                                   prevalence=x.prevalence, bugs=tuple(s.bug_types), weapon=x.weapon), captures / x.name)
                     for x in missing], workers=s.record_workers, progress=progress)


class OpenArenaLayout(DataLayout):
    """OpenArena (ioquake3): splits by map (oa_dm1-4 train, oa_dm5 val, oa_dm6/7 test).

    Frame counts are per split, spread over the split's maps (``QualitySettings.maps`` may name
    other maps per split, e.g. one each for a small test). The unlabeled pool and the label
    pool both come from the train maps, recorded with different seeds (other bots, other
    overridden textures). The world writes no object-ID maps, so the mask bank is segmented with
    the OpenCV grid; the weapon masks its captures carry (a weaponless replay) are used as is.
    """

    world = "openarena"
    segment_backend = "opencv"
    weapon_source = "engine"
    fps = 10.0  # game frames per second of capture: more motion between frames than the game's 20

    @property
    def bug_types(self) -> tuple[str, ...]:  # type: ignore[override]
        from bugdet.worlds.openarena.bugs import OPENARENA_BUGS

        return OPENARENA_BUGS

    def sessions(self, s: QualitySettings) -> list[SessionSpec]:
        from bugdet.worlds.openarena.split import maps_in

        plan = [("train", "train", 11, s.unlabeled_frames, s.unlabeled_prevalence or s.prevalence),
                ("labelpool", "train", 21, s.label_pool_frames, s.label_pool_prevalence),
                ("val", "val", 31, s.val_frames, s.val_prevalence),
                ("test", "test", 41, s.test_frames, s.prevalence)]
        out = []
        for split, maps_of, seed, frames, prevalence in plan:
            maps = s.maps.get(maps_of) or maps_in(maps_of)
            for i, (map_name, per_map) in enumerate(zip(maps, spread(frames, len(maps)))):
                out.append(SessionSpec(split, map_name, seed + i, per_map, prevalence))
        return out

    def captures_dir(self, workdir: Path, s: QualitySettings) -> Path:
        return workdir / "captures" / f"openarena-{s.width}x{s.height}"

    def record(self, missing: Sequence[SessionSpec], captures: Path, s: QualitySettings, progress: Progress) -> None:
        """One session at a time: each already runs ``record_workers`` engine replays side by side."""
        import shutil
        import time

        from bugdet.worlds.openarena.capture import OpenArenaSpec, record

        for x in missing:
            out = captures / x.name
            if out.exists():  # an interrupted recording: start it again
                shutil.rmtree(out)
            started = time.monotonic()
            spec = OpenArenaSpec(map=x.scene, seed=x.seed, frames=x.frames, fps=self.fps, width=s.width, height=s.height,
                                 prevalence=x.prevalence, bugs=tuple(s.bug_types), workers=s.record_workers)
            record(spec, out, progress=progress)
            seconds = time.monotonic() - started
            (out / "bench-record.json").write_text(
                f'{{"frames": {x.frames}, "seconds": {seconds:.1f}, "fps": {x.frames / max(seconds, 1e-9):.2f}}}\n')


LAYOUTS: dict[str, type[DataLayout]] = {"playtest": PlaytestLayout, "openarena": OpenArenaLayout}


def layout_for(world: str) -> DataLayout:
    if world not in LAYOUTS:
        raise InputError(f"--world: unknown world {world!r} (known: {', '.join(LAYOUTS)})")
    return LAYOUTS[world]()
