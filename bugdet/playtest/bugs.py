"""The switchable bugs: how each is injected, reverted, steered into view, and scheduled.

Each bug is an effect with ``apply``/``revert`` on the live world and renderer (so the correct
render of the same moment is one ``revert`` away) and a ``steer`` task that brings the player to
where the bug shows (walk into geometry for FPPC and camera clipping, look at the chosen surface,
poster or prop for the others). :class:`BugScheduler` turns a requested prevalence into episodes
of a few consecutive bug frames, spread over the session.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import numpy as np

from bugdet.errors import InputError
from bugdet.ingest.session_format import BUG_TYPES
from bugdet.playtest import groundtruth as gt
from bugdet.playtest.collision import ray_distance
from bugdet.playtest.player import RADIUS, Player, PlayerState, Task, heading_to
from bugdet.playtest.renderer import NEAR, PlaytestRenderer
from bugdet.playtest.world import World


@dataclass
class FrameContext:
    world: World
    renderer: PlaytestRenderer
    state: PlayerState
    index: int
    eye: tuple[float, float, float, float, float, float]


class BugEffect(ABC):
    name = ""

    def steer(self, player: Player) -> Task | None:
        return None

    def apply(self, ctx: FrameContext) -> None:
        pass

    def revert(self, ctx: FrameContext) -> None:
        pass

    def postprocess(self, rgb: np.ndarray, ctx: FrameContext) -> np.ndarray:
        return rgb

    @abstractmethod
    def truth(self, bug: "RenderPair", ctx: FrameContext, t: gt.Thresholds) -> gt.Truth:
        """Ground truth of this bug on a frame, from the bug render and the correct render."""


@dataclass
class RenderPair:
    rgb: np.ndarray
    ids: np.ndarray
    ref_rgb: np.ndarray
    ref_ids: np.ndarray


def _target_point(world: World, oid: int, x: float, y: float) -> tuple[float, float]:
    own = [c for c in world.colliders if c.oid == oid]
    if own:
        return min((c.closest_point(x, y) for c in own), key=lambda p: math.hypot(p[0] - x, p[1] - y))
    pos = world.objects[oid].node.getPos(world.root)
    return float(pos[0]), float(pos[1])


class Fppc(BugEffect):
    name = "fppc"

    def steer(self, player: Player) -> Task:
        return player.push_task(duration=30.0, requested=True, tall_only=True)

    def apply(self, ctx: FrameContext) -> None:
        ctx.renderer.set_fppc_bug(True)

    def revert(self, ctx: FrameContext) -> None:
        ctx.renderer.set_fppc_bug(False)

    def truth(self, pair: RenderPair, ctx: FrameContext, t: gt.Thresholds) -> gt.Truth:
        return gt.fppc(pair.ids, pair.ref_ids, t)


class CameraClipping(BugEffect):
    """The eye is pushed past the collision radius into what the player faces (noclip)."""

    name = "camera_clipping"

    def __init__(self, rng: np.random.Generator):
        # metres past the surface the player touches: just short of it (the near plane cuts the
        # surface), inside it, or through a thin wall into what lies behind
        self.depth = float(rng.uniform(-0.02, 0.45))
        self._eye_inside = False

    def steer(self, player: Player) -> Task:
        return player.push_task(duration=30.0, requested=True, tall_only=True)

    def apply(self, ctx: FrameContext) -> None:
        x, y, z, h, p, r = ctx.eye
        a = math.radians(h)
        push = RADIUS + self.depth
        ex, ey = x - math.sin(a) * push, y + math.cos(a) * push
        # the bug is real when the eye's way forward from the valid position meets geometry
        # within the push plus the near plane, i.e. the eye is in, at or through a surface
        reach = push + NEAR
        self._eye_inside = ray_distance(ctx.world.colliders, x, y, h, max_dist=reach, step=0.01) < reach
        ctx.renderer.set_eye(ex, ey, z, h, p, r)

    def revert(self, ctx: FrameContext) -> None:
        ctx.renderer.set_eye(*ctx.eye)

    def shown_eye(self, ctx: FrameContext) -> tuple[float, ...]:
        x, y, z, h, p, r = ctx.eye
        a = math.radians(h)
        push = RADIUS + self.depth
        return (x - math.sin(a) * push, y + math.cos(a) * push, z, h, p, r)

    def truth(self, pair: RenderPair, ctx: FrameContext, t: gt.Thresholds) -> gt.Truth:
        return gt.camera_clipping(pair.ids, pair.ref_ids, self._eye_inside, t)


class TextureBug(BugEffect):
    """Missing (placeholder checker), low-resolution or stretched texture on one object."""

    def __init__(self, name: str, world: World, oid: int, rng: np.random.Generator):
        self.name = name
        self.oid = oid
        # a low-resolution texture only shows up close, where texels are larger than pixels
        self.distance = float(rng.uniform(1.4, 2.6) if name == "low_res_texture" else rng.uniform(2.0, 4.5))
        # mostly stretched vertically (a wrong V scale), sometimes along the surface
        self.stretch = (float(rng.uniform(0.03, 0.08)), 1.0) if rng.random() < 0.3 else (1.0, float(rng.uniform(0.03, 0.08)))

    def steer(self, player: Player) -> Task:
        point = _target_point(player.world, self.oid, player.x, player.y)
        return player.look_task(point, self.distance, pitch=-3.0)

    def apply(self, ctx: FrameContext) -> None:
        world = ctx.world
        if self.name == "missing_texture":
            world.set_texture(self.oid, world.textures.placeholder())
        elif self.name == "low_res_texture":
            material = world.objects[self.oid].material or "concrete"
            world.set_texture(self.oid, world.textures.low_res(material))
        else:
            material = world.objects[self.oid].material or "concrete"
            world.set_texture(self.oid, world.textures.get(material), scale=self.stretch)

    def revert(self, ctx: FrameContext) -> None:
        ctx.world.restore_texture(self.oid)

    def truth(self, pair: RenderPair, ctx: FrameContext, t: gt.Thresholds) -> gt.Truth:
        return gt.surface(pair.ids, self.oid, pair.rgb, pair.ref_rgb, t, subtle=self.name != "missing_texture")


class ZFighting(BugEffect):
    name = "z_fighting"

    def __init__(self, world: World, poster_index: int, rng: np.random.Generator):
        self.poster = world.posters[poster_index]
        self.oid = self.poster.oid
        self.distance = float(rng.uniform(1.8, 3.5))

    def steer(self, player: Player) -> Task:
        c = self.poster.center
        return player.look_task((c[0], c[1]), self.distance, pitch=-2.0, face=self.poster.facing_heading)

    def apply(self, ctx: FrameContext) -> None:
        self.poster.correct.hide()
        for k, variant in enumerate(self.poster.fighting):
            variant.show() if k == ctx.index % len(self.poster.fighting) else variant.hide()

    def revert(self, ctx: FrameContext) -> None:
        for variant in self.poster.fighting:
            variant.hide()
        self.poster.correct.show()

    def truth(self, pair: RenderPair, ctx: FrameContext, t: gt.Thresholds) -> gt.Truth:
        return gt.z_fighting(pair.ids, pair.ref_ids, self.poster.oid, t)


class FloatingObject(BugEffect):
    name = "floating_object"

    def __init__(self, world: World, oid: int, rng: np.random.Generator):
        self.oid = oid
        self.lift = float(rng.uniform(0.35, 1.2))
        self.distance = float(rng.uniform(3.0, 5.0))
        self._z0 = 0.0

    def steer(self, player: Player) -> Task:
        point = _target_point(player.world, self.oid, player.x, player.y)
        return player.look_task(point, self.distance, pitch=-12.0)

    def apply(self, ctx: FrameContext) -> None:
        node = ctx.world.objects[self.oid].node
        self._z0 = node.getZ()
        node.setZ(self._z0 + self.lift)

    def revert(self, ctx: FrameContext) -> None:
        ctx.world.objects[self.oid].node.setZ(self._z0)

    def truth(self, pair: RenderPair, ctx: FrameContext, t: gt.Thresholds) -> gt.Truth:
        return gt.floating(pair.ids, pair.ref_ids, self.oid, self.lift, t)


class BlackFrame(BugEffect):
    """A dropped frame (all black) or a corrupted one (garbage blocks and torn rows)."""

    name = "black_frame"

    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        self._corrupted: np.ndarray | None = None

    def postprocess(self, rgb: np.ndarray, ctx: FrameContext) -> np.ndarray:
        h, w = rgb.shape[:2]
        out = rgb.copy()
        if self.rng.random() < 0.6:
            out[:] = 0
            self._corrupted = np.ones((h, w), dtype=bool)
            return out
        corrupted = np.zeros((h, w), dtype=bool)
        block = max(4, h // 12)
        for _ in range(int(self.rng.integers(6, 20))):
            y0, x0 = int(self.rng.integers(0, h - block)), int(self.rng.integers(0, w - block))
            bh, bw = block * int(self.rng.integers(1, 3)), block * int(self.rng.integers(1, 6))
            out[y0:y0 + bh, x0:x0 + bw] = self.rng.integers(0, 256, size=3, dtype=np.uint8)
            corrupted[y0:y0 + bh, x0:x0 + bw] = True
        y0 = int(self.rng.integers(h // 4, h - 2))
        shift = int(self.rng.integers(w // 8, w // 2))
        out[y0:] = np.roll(out[y0:], shift, axis=1)
        corrupted[y0:] = True
        self._corrupted = corrupted
        return out

    def truth(self, pair: RenderPair, ctx: FrameContext, t: gt.Thresholds) -> gt.Truth:
        assert self._corrupted is not None
        return gt.black_frame(self._corrupted)


def parse_bug_list(text: str | None) -> tuple[str, ...]:
    """``"fppc,z_fighting"`` or ``"all"`` to a validated tuple (format order)."""
    if text is None or not text.strip():
        return ()
    names = BUG_TYPES if text.strip() == "all" else tuple(n.strip() for n in text.split(",") if n.strip())
    unknown = [n for n in names if n not in BUG_TYPES]
    if unknown:
        raise InputError(f"unknown bug type(s) {', '.join(unknown)}; known: {', '.join(BUG_TYPES)}")
    return tuple(n for n in BUG_TYPES if n in names)


#: textures that lose less than this at low resolution (see TextureLibrary.detail) get no
#: low-res or stretched bug: the result would look like the correct texture
MIN_TEXTURE_DETAIL = 8.0


def make_effect(name: str, world: World, player: Player, rng: np.random.Generator, exclude: frozenset[int] = frozenset()) -> BugEffect | None:
    """A fresh effect of type ``name`` aimed at something near the player (None if the level has no
    target); ``exclude``: object IDs that earlier episodes could not make visible."""
    px, py = player.x, player.y

    def nearest(oids: list[int]) -> int | None:
        candidates = [o for o in oids if o not in exclude and any(c.oid == o for c in world.colliders)]
        if not candidates:
            return None
        dist = {o: math.dist((px, py), _target_point(world, o, px, py)) for o in candidates}

        def in_sight(o: int) -> bool:
            tx, ty = _target_point(world, o, px, py)
            own = [c for c in world.colliders if c.oid != o]
            return ray_distance(own, px, py, heading_to(tx - px, ty - py), max_dist=dist[o]) >= dist[o] - 0.05

        # prefer what the player can already see: the nearest object may be behind a wall
        ranked = sorted(candidates, key=lambda o: (dist[o], o))[:12]
        visible = [o for o in ranked if in_sight(o)]
        ranked = (visible or ranked)[:4]
        return ranked[int(rng.integers(len(ranked)))]

    if name == "fppc":
        return Fppc()
    if name == "camera_clipping":
        return CameraClipping(rng)
    if name in ("missing_texture", "low_res_texture", "stretched_texture"):
        targets = world.texture_targets
        if name != "missing_texture":
            targets = [o for o in targets if world.objects[o].material is not None
                       and world.textures.detail(world.objects[o].material) >= MIN_TEXTURE_DETAIL]
        oid = nearest(targets)
        return None if oid is None else TextureBug(name, world, oid, rng)
    if name == "z_fighting":
        if not world.posters:
            return None
        usable = [k for k in range(len(world.posters)) if world.posters[k].oid not in exclude] or list(range(len(world.posters)))
        ranked = sorted(usable, key=lambda k: (math.dist((px, py), world.posters[k].center[:2]), k))[:3]
        return ZFighting(world, ranked[int(rng.integers(len(ranked)))], rng)
    if name == "floating_object":
        oid = nearest(world.floatables)
        return None if oid is None else FloatingObject(world, oid, rng)
    if name == "black_frame":
        return BlackFrame(rng)
    raise InputError(f"unknown bug type {name!r}")


@dataclass
class Episode:
    effect: BugEffect
    quota: int
    made: int = 0
    waited: int = 0
    active_frames: int = 0
    started: bool = False
    steered: bool = False


@dataclass
class BugScheduler:
    """Places bug episodes so a session shows ``prevalence`` bug frames, spread over its length.

    The target count is split into episodes of 2-6 consecutive bug frames whose start frames are
    drawn uniformly over the session. When an episode is due the player is steered into position
    and the bug switches on once it can be seen; frames where the switched-on bug turns out not to
    be visible do not count, and what an episode fails to deliver is rescheduled soon after.
    """

    bug_types: tuple[str, ...]
    prevalence: float
    frames: int
    rng: np.random.Generator
    lead: int = 90  # frames kept free at the end, for the last episode to get into position
    made: int = 0
    episode: Episode | None = None
    _cycle: list[str] = field(default_factory=list)
    _plan: list[tuple[int, int]] | None = None  # (start frame, quota), in start order
    _failed: set[int] = field(default_factory=set)  # targets an episode could not make visible

    @property
    def target(self) -> int:
        return int(round(self.prevalence * self.frames)) if self.bug_types else 0

    def _make_plan(self) -> list[tuple[int, int]]:
        quotas: list[int] = []
        while sum(quotas) < self.target:
            quotas.append(min(int(self.rng.integers(2, 7)), self.target - sum(quotas)))
        span = max(1, self.frames - self.lead - 7 * len(quotas))
        starts = np.sort(self.rng.integers(0, span, size=len(quotas)))
        # keep episodes apart: each one starts after the previous one's frames
        return [(int(start) + 7 * k, q) for k, (start, q) in enumerate(zip(starts, quotas))]

    def plan(self, index: int, player: Player, world: World, state: PlayerState) -> BugEffect | None:
        """The effect to apply on frame ``index``, if any (call before rendering it)."""
        if self._plan is None:
            self._plan = self._make_plan()
        if self.episode is None and self._plan:
            start, quota = self._plan[0]
            owed = sum(q for _, q in self._plan)
            if index >= start or self.frames - index < owed * 4 + self.lead // 2:
                self._plan.pop(0)
                self._start(quota, player, world)
        ep = self.episode
        if ep is None:
            return None
        if not ep.started:
            ep.waited += 1
            in_position = player.task is not None and player.task.requested and player.task.arrived
            if not ep.steered or in_position:
                ep.started = True
            elif ep.waited > 240:
                self._end(player, index)
                return None
        if ep.started:
            ep.active_frames += 1
            if ep.active_frames > ep.quota * 3 + 20:
                self._end(player, index)
                return None
            return ep.effect
        return None

    def report(self, present: bool, player: Player) -> None:
        """Whether the frame just rendered with the effect really showed the bug."""
        ep = self.episode
        if ep is None or not ep.started:
            return
        if present:
            ep.made += 1
            self.made += 1
        if ep.made >= ep.quota:
            self._end(player, None)

    def _start(self, quota: int, player: Player, world: World) -> None:
        for _ in range(len(self.bug_types) * 2):
            if not self._cycle:
                self._cycle = [self.bug_types[k] for k in self.rng.permutation(len(self.bug_types))]
            effect = make_effect(self._cycle.pop(0), world, player, self.rng, frozenset(self._failed))
            if effect is not None:
                task = effect.steer(player)
                if task is not None:
                    player.request(task)
                self.episode = Episode(effect, quota, steered=task is not None)
                return

    def _end(self, player: Player, index: int | None) -> None:
        """Close the episode; what it failed to deliver is owed by a new one a second later."""
        ep = self.episode
        if ep is not None and ep.steered:
            player.release()
        if ep is not None and index is not None and ep.made < ep.quota and self._plan is not None:
            self._plan.insert(0, (index + 30, ep.quota - ep.made))
            target = getattr(ep.effect, "oid", None)
            if target is not None:
                self._failed.add(target)
        self.episode = None
