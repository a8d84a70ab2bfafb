"""One playtest session as a stream of frames with exact ground truth.

:class:`PlaytestSession` ties the parts together per frame: the player moves, the viewmodel
animates, the scheduler may switch a bug on, the renderer draws the colour and ID passes, and
for a bug frame a second, correct render of the same moment gives the reference the ground truth
is computed from (and that the contact sheet shows). Everything random comes from named streams
of the session seed, so a session is reproducible byte for byte.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator

import numpy as np

from bugdet.errors import InputError
from bugdet.ingest.session_format import Pose, check_capture_request
from bugdet.playtest import groundtruth as gt
from bugdet.playtest.bugs import BugEffect, BugScheduler, CameraClipping, FrameContext, RenderPair
from bugdet.playtest.player import Player
from bugdet.playtest.renderer import PlaytestRenderer, get_renderer
from bugdet.playtest.scenes import SCENES, load_world
from bugdet.playtest.seeding import stream
from bugdet.playtest.split import split_for_seed, variant_for
from bugdet.playtest.viewmodel import WEAPONS, ViewmodelAnimator, build_weapon, set_muzzle_flash
from bugdet.playtest.world import WEAPON_ID, World


@dataclass
class PlaytestSpec:
    scene: str = "park"
    seed: int = 0
    frames: int = 300
    width: int = 320
    height: int = 240
    fps: float = 30.0
    prevalence: float = 0.0
    bugs: tuple[str, ...] = ()
    variant: str | None = None
    fov: float | None = None  # horizontal degrees; drawn per session when None
    weapon: str | None = None  # drawn per session when None
    thresholds: gt.Thresholds = field(default_factory=gt.Thresholds)

    def validate(self) -> None:
        if self.scene not in SCENES:
            raise InputError(f"unknown scene {self.scene!r}; known: {', '.join(SCENES)}")
        check_capture_request(self.frames, self.prevalence, self.bugs)
        if not (32 <= self.width <= 4096 and 32 <= self.height <= 4096):
            raise InputError(f"resolution {self.width}x{self.height} out of range (32..4096)")
        if self.weapon is not None and self.weapon not in WEAPONS:
            raise InputError(f"unknown weapon {self.weapon!r}; known: {', '.join(WEAPONS)}")
        variant_for(self.scene, self.seed, self.variant)


@dataclass
class FrameResult:
    index: int
    time: float
    pose: Pose
    rgb: np.ndarray  # RGB uint8
    ids: np.ndarray  # uint16 object IDs of the frame as shown
    weapon_mask: np.ndarray  # visible viewmodel pixels of the correct render
    truths: dict[str, gt.Truth]
    correct_rgb: np.ndarray | None  # the same moment rendered with the bug off (bug frames)
    extra: dict


class PlaytestSession:
    """Frames of one session. Sessions share the process-wide renderer, so iterate one at a time."""

    def __init__(self, spec: PlaytestSpec, renderer: PlaytestRenderer | None = None):
        spec.validate()
        self.spec = spec
        self.split = split_for_seed(spec.seed)
        self.variant = variant_for(spec.scene, spec.seed, spec.variant)
        session_rng = stream(spec.seed, "session")
        self.fov = float(spec.fov) if spec.fov is not None else float(session_rng.uniform(70.0, 95.0))
        self.weapon = spec.weapon or WEAPONS[int(session_rng.integers(len(WEAPONS)))]
        self.world: World = load_world(spec.scene, self.variant, spec.seed, spec.seed)
        self.renderer = renderer or get_renderer()

    @property
    def objects(self) -> dict[str, dict[str, str]]:
        return self.world.object_table()

    def generator_info(self) -> dict:
        return {
            "name": "bugdet.playtest", "renderer": "panda3d p3tinydisplay", "variant": self.variant,
            "environment": self.world.environment.name, "fov": round(self.fov, 3), "weapon": self.weapon,
            "thresholds": self.spec.thresholds.__dict__,
        }

    def frames(self) -> Iterator[FrameResult]:
        spec, world, r = self.spec, self.world, self.renderer
        r.resize(spec.width, spec.height)
        r.set_world(world)
        r.set_fppc_bug(False)
        r.set_fov(self.fov)
        weapon_node = build_weapon(self.weapon)
        weapon_node.setColorScale(*world.environment.viewmodel_tint, 1.0)  # lit like the level
        r.set_weapon(weapon_node)
        player = Player(world, stream(spec.seed, "route"))
        animator = ViewmodelAnimator(self.weapon)
        actions = stream(spec.seed, "actions")
        scheduler = BugScheduler(spec.bugs, spec.prevalence, spec.frames, stream(spec.seed, "bugs"))
        dt = 1.0 / spec.fps
        for index in range(spec.frames):
            state = player.step(dt)
            firing = False
            if not animator.busy:
                if actions.random() < 0.04:
                    animator.fire()
                    firing = True
                elif actions.random() < 0.006:
                    animator.start_reload()
            vm_pos, vm_hpr = animator.step(dt, state.speed, state.yaw_rate, state.pitch_rate)
            set_muzzle_flash(weapon_node, animator.flash)
            eye = (state.x, state.y, state.z, state.h, state.p, 0.0)
            r.set_eye(*eye)
            r.set_weapon_pose(vm_pos, vm_hpr)
            ctx = FrameContext(world, r, state, index, eye)
            effect = scheduler.plan(index, player, world, state)
            truths = {name: gt.Truth() for name in spec.bugs}
            extra = {"task": state.task, "firing": firing, "reloading": animator.busy, "speed": round(state.speed, 4)}
            shown_eye = eye
            if effect is None:
                out = r.render()
                assert out.rgb is not None and out.ids is not None
                rgb, ids, weapon_mask, correct = out.rgb, out.ids, out.ids == WEAPON_ID, None
            else:
                rgb, ids, weapon_mask, correct, truth = self._render_bug(effect, ctx)
                scheduler.report(truth.present, player)
                if truth.present:
                    truths[effect.name] = truth
                    extra["bug"] = effect.name
                    if isinstance(effect, CameraClipping):
                        shown_eye = effect.shown_eye(ctx)
            x, y, z, h, p, roll = shown_eye
            pose = Pose(x=round(x, 5), y=round(y, 5), z=round(z, 5), h=round(h, 4), p=round(p, 4), r=round(roll, 4))
            yield FrameResult(index, round(index * dt, 6), pose, rgb, ids, weapon_mask, truths, correct, extra)

    def _render_bug(self, effect: BugEffect, ctx: FrameContext):
        r = self.renderer
        effect.apply(ctx)
        try:
            bug = r.render()
        finally:
            effect.revert(ctx)
        ref = r.render()
        assert bug.rgb is not None and bug.ids is not None and ref.rgb is not None and ref.ids is not None
        bug_rgb = effect.postprocess(bug.rgb, ctx)
        truth = effect.truth(RenderPair(bug_rgb, bug.ids, ref.rgb, ref.ids), ctx, self.spec.thresholds)
        weapon_mask = ref.ids == WEAPON_ID
        if truth.present:
            return bug_rgb, bug.ids, weapon_mask, ref.rgb, truth
        # switched on but not visible enough: the frame is shown correctly and is a clean frame
        return ref.rgb, ref.ids, weapon_mask, None, truth
