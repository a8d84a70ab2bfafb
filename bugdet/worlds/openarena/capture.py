"""Records one OpenArena capture session: bots play, a demo is replayed clean and per bug.

1. **Play**: the game starts ``map`` with ``devmap`` (cheats on, so the replays may change
   cheat-protected settings), the local client becomes a spectator following the first of
   several bots, and the demo records what that bot sees; a fixed game clock lets the match run
   as fast as the CPU allows and the demo hold exactly the game time asked for.
2. **Replay**: the demo is played back with ``video`` at a fixed frame rate once clean, once
   without the gun (its difference is the weapon mask) and once per requested bug. Replays of
   one demo render the same moments frame for frame.
3. **Compose**: episodes of 2-6 consecutive bug frames are placed where the bug is visible
   (:mod:`.bugs` thresholds) until the requested prevalence is met; bug frames show the bug
   replay and carry the difference to the clean replay as mask; all other frames are clean.

Everything runs in a temporary directory (one ``fs_homepath`` per run) removed at the end; the
demo is kept in the session (``openarena/``) so a session can be re-rendered.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bugdet.errors import InputError
from bugdet.ingest.session_format import (
    SESSION_FILE,
    BugTruth,
    FrameEntry,
    SessionInfo,
    SessionReader,
    SessionWriter,
    check_capture_request,
)
from bugdet.playtest.seeding import stream
from bugdet.progress import NullProgress, Progress
from bugdet.worlds.openarena import assets
from bugdet.worlds.openarena import bugs as oabugs
from bugdet.worlds.openarena.avi import AviFrames
from bugdet.worlds.openarena.determinism import build_shim, require_compiler, seeded_env
from bugdet.worlds.openarena.engine import Engine, GameProcess, base_cvars, find_engine
from bugdet.worlds.openarena.split import split_for_map

BOTS = ("Sarge", "Grism", "Major", "Kyonshi", "Angelyss", "Gargoyle", "Penguin", "Tony", "Ayumi", "Merman")
DEMO_NAME = "bugdet"
SKIP_FRAMES = 4  # the first replayed frames can still show the demo starting
FOV = 90.0  # the game's default cg_fov
SETTLE_GAME_SECONDS = 4.0
SERVER_FPS = 20  # server ticks per game second (the game's default sv_fps)
SLOWEST_REPLAY_FPS = 2.0  # a replay slower than this (at 320x240) is taken as hung and stopped


@dataclass
class OpenArenaSpec:
    map: str = "oa_dm1"
    seed: int = 0
    frames: int = 300
    fps: float = 20.0
    width: int = 320
    height: int = 240
    prevalence: float = 0.0
    bugs: tuple[str, ...] = ()
    bots: int = 3
    bot_skill: int = 3
    bug_cvars: dict[str, dict[str, str]] = field(default_factory=dict)  # bug -> engine settings to force
    workers: int = 0  # replays run at once; 0 = one per CPU core, at most 4
    demo: Path | None = None  # replay this demo (e.g. one a session kept) instead of playing a match

    def validate(self, engine: Engine) -> None:
        check_capture_request(self.frames, self.prevalence, self.bugs)
        if not (64 <= self.width <= 1920 and 48 <= self.height <= 1080):
            raise InputError(f"resolution {self.width}x{self.height} out of range (64x48..1920x1080)")
        if not 1 <= self.bots <= len(BOTS):
            raise InputError(f"--bots must be in 1..{len(BOTS)}")
        if self.workers < 0:
            raise InputError("--workers must be >= 0 (0 = one per CPU core)")
        if not 1 <= self.fps <= 60:
            raise InputError("--fps must be in 1..60")
        stray = sorted(set(self.bug_cvars) - set(self.bugs))
        if stray:
            raise InputError(f"engine settings given for bug types not recorded: {', '.join(stray)}")
        if self.demo is not None:
            self._check_demo(Path(self.demo))
        if self.map not in assets.available_maps(str(engine.basepath)):
            raise InputError(f"map {self.map!r} is not in the game data; e.g. oa_dm1 .. oa_dm7")

    def _check_demo(self, demo: Path) -> None:
        if not demo.is_file():
            raise InputError(f"{demo}: no such demo file")
        kept_by = demo.parent.parent / SESSION_FILE  # a demo a session kept: OUT/openarena/<demo>
        if kept_by.is_file():
            scene = SessionReader.open(kept_by.parent).info.scene
            if scene and scene != self.map:
                raise InputError(f"{demo} plays on {scene} (its session says so): pass --map {scene}")


@dataclass
class _BugFrame:
    name: str
    image: np.ndarray
    mask: np.ndarray
    severity: float


@dataclass
class CaptureTimings:
    play_s: float = 0.0
    replay_s: dict[str, float] = field(default_factory=dict)
    compose_s: float = 0.0
    wall_s: float = 0.0  # the whole recording (replays overlap, so this is less than the sum)


def session_id(spec: OpenArenaSpec) -> str:
    return f"openarena-{spec.map}-{spec.seed}"


class OpenArenaCapture:
    """One session's play, replays and composition (see the module docstring)."""

    def __init__(self, spec: OpenArenaSpec, engine: Engine | None = None, progress: Progress | None = None):
        self.engine = engine or find_engine()
        spec.validate(self.engine)
        self.spec = spec
        # llvmpipe spreads one frame over the cores, but engine start-up (pk3 index, map load) is
        # serial: two replays at a time keep two cores busy
        self.workers = spec.workers or max(1, min(4, os.cpu_count() or 1))
        self.progress = progress or NullProgress()
        self.timings = CaptureTimings()
        require_compiler()
        self.log_dir: Path | None = None  # where engine logs go (the session's openarena/ when recording)
        self._shim: Path | None = None
        self._shim_lock = threading.Lock()
        bot_rng = stream(spec.seed, "bots")
        self.bot_names = [BOTS[int(i)] for i in bot_rng.choice(len(BOTS), size=spec.bots, replace=False)]
        self.variants = {bug: oabugs.make_variant(bug, self.engine.basepath, spec.map, stream(spec.seed, f"bug-{bug}"),
                                             spec.bug_cvars.get(bug))
                         for bug in spec.bugs}

    def _env(self, work: Path) -> dict[str, str]:
        """Every run of one session draws the same random numbers (see :mod:`.determinism`)."""
        with self._shim_lock:
            if self._shim is None or not self._shim.is_file():
                self._shim = build_shim(work / "shim")
        return seeded_env(self._shim, self.spec.seed)

    def _log(self, work: Path, name: str) -> Path:
        return (self.log_dir or work) / f"{name}.log"

    # -- 1. play ---------------------------------------------------------------------------
    def play(self, work: Path) -> Path:
        """Bots play the map while a demo of the first bot's view is recorded; returns the demo.

        The match runs on a fixed clock (``fixedtime``: every engine frame advances the game by
        exactly one server tick, however long it took to compute), and the recording is stopped
        by the engine's own ``wait`` frame counter: the demo holds the game time asked for
        whether the machine is idle or loaded, and the match plays as fast as the CPU allows.
        """
        spec = self.spec
        home = work / "play"
        tick_ms = 1000 // SERVER_FPS
        settle = int(SETTLE_GAME_SECONDS * SERVER_FPS)
        length = int(np.ceil((spec.frames + SKIP_FRAMES) / spec.fps * SERVER_FPS)) + 2 * SERVER_FPS
        args = base_cvars(home, 160, 120) + [
            "+set", "sv_pure", "0", "+set", "bot_enable", "1", "+set", "g_gametype", "0", "+set", "sv_fps", str(SERVER_FPS),
            "+set", "fraglimit", "0", "+set", "timelimit", "0", "+set", "com_maxfps", "0", "+devmap", spec.map,
        ]
        started = time.monotonic()
        with GameProcess(self.engine, args, self._log(work, "play"), env=self._env(work)) as game:
            game.wait_for(r"entered the game", 90)
            game.send("team spectator")
            for name in self.bot_names:
                game.send(f"addbot {name} {spec.bot_skill}")
            for _ in self.bot_names:
                game.wait_for(r"entered the game", 60)
            # settle first: the spectator's own team switch is an obituary event that stays in
            # snapshots for a moment, and the bots are still choosing where to go
            # the client runs the command buffer twice per engine frame, so ``wait`` counts halves
            game.send(f"fixedtime {tick_ms}; follow 1; wait {2 * settle}; record {DEMO_NAME}; wait {2 * length}; stoprecord")
            game.wait_for(r"recording to demos/", 60)
            # the slowest machines here render ~20 frames/s at 160x120 while playing
            game.wait_for(r"Stopped demo", 60 + length / 20)
            game.send("quit")
            game.wait_exit(30)
        demos = list((home / "baseoa" / "demos").glob(f"{DEMO_NAME}.dm_*"))
        if not demos:
            raise InputError(f"the game recorded no demo; see {self._log(work, 'play')}")
        self.timings.play_s = time.monotonic() - started
        return demos[0]

    def _given_demo(self, work: Path) -> Path:
        """A demo recorded before (the match itself is not repeatable: bots follow wall-clock
        timing; the demo is, and so is everything rendered from it)."""
        assert self.spec.demo is not None
        dest = work / "given" / f"{DEMO_NAME}{Path(self.spec.demo).suffix}"
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(self.spec.demo, dest)
        return dest

    # -- 2. replay -------------------------------------------------------------------------
    def replay(self, work: Path, demo: Path, variant: oabugs.Variant) -> AviFrames:
        """Plays the demo back with ``variant`` and returns the frames it rendered."""
        spec = self.spec
        home = work / variant.name
        (home / "baseoa" / "demos").mkdir(parents=True, exist_ok=True)
        shutil.copy(demo, home / "baseoa" / "demos" / demo.name)
        if variant.shaders:
            assets.write_override_pk3(home, assets.override_scripts(self.engine.basepath, variant.shaders))
        args = base_cvars(home, spec.width, spec.height) + [
            "+set", "cl_aviFrameRate", f"{spec.fps:g}", "+set", "cl_aviMotionJpeg", "0", "+set", "nextdemo", "quit",
            *variant.args(), "+demo", DEMO_NAME, "+video", variant.name,
        ]
        started = time.monotonic()
        # llvmpipe renders 320x240 at ~50 frames/s on one idle core: give up below 2 frames/s
        frames = (SKIP_FRAMES + spec.frames) * spec.width * spec.height / (320 * 240)
        log = self._log(work, variant.name)
        screen = f"{max(640, spec.width)}x{max(480, spec.height)}x24"  # the window must fit the X screen
        with GameProcess(self.engine, args, log, screen=screen, env=self._env(work)) as game:
            game.wait_exit(60 + frames / SLOWEST_REPLAY_FPS)
        self.timings.replay_s[variant.name] = time.monotonic() - started
        path = home / "baseoa" / "videos" / f"{variant.name}.avi"
        if not path.is_file():
            raise InputError(f"the {variant.name} replay wrote no video; see {log}")
        video = AviFrames(path, spec.width, spec.height)
        if len(video) < SKIP_FRAMES + spec.frames:
            video.close()
            raise InputError(f"the {variant.name} replay rendered {len(video)} frames, "
                             f"{SKIP_FRAMES + spec.frames} needed; see {log}")
        return video

    # -- 3. compose ------------------------------------------------------------------------
    def _weapon_masks(self, clean: AviFrames, no_weapon: AviFrames) -> np.ndarray:
        """Packed bool masks of the visible weapon, one per frame."""
        masks = [np.packbits(oabugs.fill_holes(oabugs.diff_mask(clean[SKIP_FRAMES + i], no_weapon[SKIP_FRAMES + i])))
                 for i in range(self.spec.frames)]
        return np.stack(masks)

    def _unpack(self, packed: np.ndarray) -> np.ndarray:
        h, w = self.spec.height, self.spec.width
        return np.unpackbits(packed, count=h * w).reshape(h, w).astype(bool)

    def _episodes(self) -> list[tuple[str, int]]:
        """(bug, length) episodes of 2-6 frames, bug types in turn, summing to the target; shorter
        when the target is small, so that every requested bug type gets an episode if it can."""
        spec = self.spec
        target = int(round(spec.prevalence * spec.frames)) if spec.bugs else 0
        longest = max(1, min(6, target // max(1, len(spec.bugs))))
        rng = stream(spec.seed, "episodes")
        episodes: list[tuple[str, int]] = []
        made = 0
        while made < target:
            q = min(int(rng.integers(min(2, longest), longest + 1)), target - made)
            episodes.append((spec.bugs[len(episodes) % len(spec.bugs)], q))
            made += q
        return episodes

    def _place(self, lengths: list[int], ok: np.ndarray, taken: np.ndarray, rng: np.random.Generator) -> list[int]:
        """Frames for one bug's episodes: each on a run of frames where the bug is visible, kept
        apart from every episode already placed (``taken``) by a gap of clean frames; an episode
        with no room anywhere is shortened, then dropped."""
        gap = 2
        chosen: list[int] = []
        for length in lengths:
            for q in range(length, 0, -1):
                starts = [s for s in range(self.spec.frames - q + 1)
                          if ok[s:s + q].all() and not taken[max(0, s - gap):s + q + gap].any()]
                if starts:
                    s = starts[int(rng.integers(len(starts)))]
                    taken[s:s + q] = True
                    chosen.extend(range(s, s + q))
                    break
        return chosen

    def record(self, out_dir: Path) -> SessionInfo:
        spec = self.spec
        out_dir = Path(out_dir)
        info = SessionInfo(
            session_id=session_id(spec), seed=spec.seed, scene=spec.map, width=spec.width, height=spec.height,
            fps=spec.fps, bug_types=list(spec.bugs), prevalence=spec.prevalence, split=split_for_map(spec.map),
            generator=self.generator_info(),
        )
        replays = 2 + len(spec.bugs)
        began = time.monotonic()
        with tempfile.TemporaryDirectory(prefix="bugdet-openarena-") as tmp, \
                SessionWriter(out_dir, info) as writer:
            work = Path(tmp)
            self.log_dir = out_dir / "openarena"  # engine logs and the demo stay with the session
            self.log_dir.mkdir(exist_ok=True)
            self.progress.start(f"openarena {spec.map}: playing, then {replays} replays of {spec.frames} frames",
                                1 + replays + spec.frames)
            demo = self.play(work) if spec.demo is None else self._given_demo(work)
            self.progress.advance()
            shutil.copy(demo, self.log_dir / demo.name)
            with ThreadPoolExecutor(max_workers=min(2, self.workers)) as pool:
                pending = pool.submit(self.replay, work, demo, oabugs.NO_WEAPON)
                clean = self.replay(work, demo, oabugs.CLEAN)
                self.progress.advance()
                no_weapon = pending.result()
            with clean:
                with no_weapon:
                    weapon = self._weapon_masks(clean, no_weapon)
                shutil.rmtree(work / oabugs.NO_WEAPON.name, ignore_errors=True)
                self.progress.advance()
                bug_frames, visible = self._bug_replays(work, demo, clean, weapon)
                started = time.monotonic()
                for i in range(spec.frames):
                    self._write_frame(writer, i, clean[SKIP_FRAMES + i], self._unpack(weapon[i]), bug_frames.get(i))
                    self.progress.advance()
                self.timings.compose_s = time.monotonic() - started
            writer.info.generator["bug_frames"] = len(bug_frames)
            writer.info.generator["achieved_prevalence"] = round(len(bug_frames) / spec.frames, 6)
            writer.info.generator["visible_frames"] = visible
        self.timings.wall_s = time.monotonic() - began
        return writer.info

    def _bug_replays(self, work: Path, demo: Path, clean: AviFrames,
                     weapon: np.ndarray) -> tuple[dict[int, _BugFrame], dict[str, int]]:
        """Bug frames by index, and per bug the number of frames it was visible on.

        Bug replays run ``workers`` at a time, each measuring where its bug is visible. Episodes
        are then placed bug by bug in a fixed order (the same plan whatever replay ends first);
        frames a bug type cannot show (too few visible frames) go to the next bug types. Only
        the chosen frames are kept, and each replay's video is deleted once used.
        """
        episodes = self._episodes()
        rng = stream(self.spec.seed, "placement")
        taken = np.zeros(self.spec.frames, bool)
        chosen: dict[int, _BugFrame] = {}
        visible: dict[str, int] = {}
        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            jobs = {bug: pool.submit(self._measure, work, demo, bug, variant, clean, weapon)
                    for bug, variant in self.variants.items()}
            owed = 0  # frames the bug types placed so far could not show, handed on to the next
            for bug, job in jobs.items():
                video, shares = job.result()
                with video:
                    ok = np.array([oabugs.visible(bug, share) for share in shares], bool)
                    visible[bug] = int(ok.sum())
                    lengths = [q for b, q in episodes if b == bug] + [min(6, owed - k) for k in range(0, owed, 6)]
                    placed = self._place(lengths, ok, taken, rng)
                    owed = sum(lengths) - len(placed)
                    for i in placed:
                        image = video[SKIP_FRAMES + i]
                        chosen[i] = _BugFrame(bug, image, oabugs.diff_mask(image, clean[SKIP_FRAMES + i]), float(shares[i]))
                shutil.rmtree(work / self.variants[bug].name, ignore_errors=True)
        return chosen, visible

    def _measure(self, work: Path, demo: Path, bug: str, variant: oabugs.Variant, clean: AviFrames,
                 weapon: np.ndarray) -> tuple[AviFrames, np.ndarray]:
        """Replays ``variant``; returns its video and the bug's severity on every frame."""
        video = self.replay(work, demo, variant)
        shares = np.array([
            oabugs.severity(bug, oabugs.diff_mask(video[SKIP_FRAMES + i], clean[SKIP_FRAMES + i]), self._unpack(weapon[i]))
            for i in range(self.spec.frames)
        ])
        self.progress.advance()
        return video, shares

    def _write_frame(self, writer: SessionWriter, i: int, clean: np.ndarray, weapon_mask: np.ndarray,
                     bug: _BugFrame | None) -> None:
        truths = {name: BugTruth() for name in self.spec.bugs}
        image, extra = clean, {"bots": len(self.bot_names)}
        if bug is not None:
            image = bug.image
            truths[bug.name] = BugTruth(True, round(bug.severity, 6), writer.write_mask(i, bug.name, bug.mask))
            extra["bug"] = bug.name
        writer.append(FrameEntry(
            index=i, time=round(i / self.spec.fps, 6), file=writer.write_frame_image(i, image), scene=self.spec.map,
            fov=FOV, weapon_mask=writer.write_mask(i, "weapon", weapon_mask), bugs=truths, extra=extra,
        ))

    def generator_info(self) -> dict:
        spec = self.spec
        return {
            "name": "bugdet.worlds.openarena", "engine": "ioquake3 (OpenArena), renderer opengl1 on Mesa llvmpipe",
            "map": spec.map, "bots": self.bot_names, "bot_skill": spec.bot_skill, "clock": f"fixedtime {1000 // SERVER_FPS} ms per engine frame",
            "follow": self.bot_names[0], "fov": FOV, "demo": Path(spec.demo).name if spec.demo else None,
            "bugs": {bug: {"cvars": v.cvars, **v.params} for bug, v in self.variants.items()},
            "diff_level": oabugs.DIFF_LEVEL, "visible_share": {b: oabugs.VISIBLE_SHARE[b] for b in spec.bugs},
        }


def record(spec: OpenArenaSpec, out_dir: Path, progress: Progress | None = None) -> tuple[SessionInfo, CaptureTimings]:
    """Record ``spec`` into ``out_dir``; returns the session info and where the time went."""
    capture = OpenArenaCapture(spec, progress=progress)
    info = capture.record(out_dir)
    return info, capture.timings
