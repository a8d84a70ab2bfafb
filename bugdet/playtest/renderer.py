"""The offscreen renderer: one Panda3D engine per process, colour and object-ID passes.

Panda3D is happiest with one graphics engine per process, so :func:`get_renderer` hands out a
single :class:`PlaytestRenderer` that sessions, tests and benchmarks reuse; it swaps worlds and
resizes its buffers on demand. It uses the software renderer ``p3tinydisplay`` (no GPU, no
display server) and draws directly with GraphicsEngine buffers, without ShowBase.

Two buffers, each with two display regions (the usual first-person setup):

* the **world region** draws the level through the eye camera;
* the **viewmodel region** draws the weapon through a camera with the same lens after clearing
  the depth buffer, so the weapon is always on top: this is the correct render.

The FPPC bug moves the weapon into the world region's scene (same place relative to the eye), so
it is depth-tested against the level and sinks into walls. The ID buffer draws the same two
regions with every object in a flat colour that encodes its 16-bit ID (see :func:`encode_id`:
6 bits per channel), which is exact because lighting, textures and colour scales are forced off.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from panda3d.core import (
    Camera, ColorAttrib, ColorScaleAttrib, CompassEffect, FrameBufferProperties, GraphicsEngine, GraphicsOutput,
    GraphicsPipe, GraphicsPipeSelection, LightAttrib, NodePath, PerspectiveLens, RenderState, Texture,
    TextureAttrib, TransparencyAttrib, WindowProperties, loadPrcFileData,
)

from bugdet.playtest.haze import Haze
from bugdet.playtest.world import WEAPON_ID, World

NEAR = 0.03
FAR = 200.0
_PRC = "load-display p3tinydisplay\nwindow-type offscreen\naudio-library-name null\nsync-video 0\nnotify-level-display fatal\n"


@dataclass
class RenderOutput:
    rgb: np.ndarray | None  # H x W x 3 uint8, RGB, row 0 at the top
    ids: np.ndarray | None  # H x W uint16 object IDs


def encode_id(oid: int) -> tuple[float, float, float, float]:
    """Flat colour of an object ID: 6 bits per channel, each level in the middle of a 4-wide bin.

    The software rasteriser's fixed-point colour path can move an 8-bit value by one, so a full
    8 bits per channel would alias neighbouring IDs; 6 bits with a 4-level margin decode exactly.
    """
    parts = (oid & 63, (oid >> 6) & 63, (oid >> 12) & 63)
    return (parts[0] * 4 + 2) / 255.0, (parts[1] * 4 + 2) / 255.0, (parts[2] * 4 + 2) / 255.0, 1.0


def decode_ids(raw: np.ndarray) -> np.ndarray:
    """Inverse of :func:`encode_id` for an H x W x 3 RGB readback."""
    levels = raw.astype(np.uint16) >> 2
    return levels[..., 0] | (levels[..., 1] << 6) | (levels[..., 2] << 12)


class _Pass:
    """One offscreen buffer with a world region and a viewmodel region, read back to RAM."""

    def __init__(self, engine: GraphicsEngine, pipe: GraphicsPipe, name: str, width: int, height: int, sort: int,
                 world_cam: NodePath, vm_cam: NodePath, clear_color: tuple[float, float, float, float]):
        fbp = FrameBufferProperties()
        fbp.setRgbColor(True)
        fbp.setColorBits(24)
        fbp.setDepthBits(24)
        self.buffer = engine.makeOutput(pipe, name, sort, fbp, WindowProperties.size(width, height), GraphicsPipe.BFRefuseWindow)
        if self.buffer is None:
            raise RuntimeError("could not create an offscreen buffer with p3tinydisplay")
        self.texture = Texture(name)
        self.buffer.addRenderTexture(self.texture, GraphicsOutput.RTMCopyRam)
        self.buffer.setClearColorActive(False)
        self.world_region = self.buffer.makeDisplayRegion()
        self.world_region.setSort(0)
        self.world_region.setCamera(world_cam)
        self.world_region.setClearColorActive(True)
        self.world_region.setClearColor(clear_color)
        self.world_region.setClearDepthActive(True)
        self.vm_region = self.buffer.makeDisplayRegion()
        self.vm_region.setSort(1)
        self.vm_region.setCamera(vm_cam)
        self.vm_region.setClearDepthActive(True)
        self.width, self.height = width, height

    def read(self) -> np.ndarray:
        data = np.frombuffer(self.texture.getRamImageAs("RGB"), dtype=np.uint8)
        return data.reshape(self.height, self.width, 3)[::-1]


class PlaytestRenderer:
    def __init__(self) -> None:
        loadPrcFileData("bugdet-playtest", _PRC)
        self.engine = GraphicsEngine.getGlobalPtr()
        self.pipe = GraphicsPipeSelection.getGlobalPtr().makeDefaultPipe()
        if self.pipe is None:
            raise RuntimeError("p3tinydisplay is not available in this Panda3D build")
        self.lens = PerspectiveLens()
        self.lens.setNearFar(NEAR, FAR)
        self.scene = NodePath("scene")
        self.eye = self.scene.attachNewNode("eye")
        self.world_color_cam = self.eye.attachNewNode(Camera("world-color", self.lens))
        self.world_id_cam = self.eye.attachNewNode(Camera("world-id", self.lens))
        self.vm_scene = NodePath("viewmodel-scene")
        self.vm_color_cam = self.vm_scene.attachNewNode(Camera("vm-color", self.lens))
        self.vm_id_cam = self.vm_scene.attachNewNode(Camera("vm-id", self.lens))
        self.vm_holder = self.vm_scene.attachNewNode("viewmodel")
        self.vm_holder.setTag("oid", str(WEAPON_ID))
        self.weapon: NodePath | None = None
        self.world: World | None = None
        self.fppc_bug = False
        self.size: tuple[int, int] = (0, 0)
        self.color_pass: _Pass | None = None
        self.id_pass: _Pass | None = None
        self._haze: Haze | None = None
        self._haze_key: tuple | None = None
        for cam in (self.world_id_cam, self.vm_id_cam):
            node = cam.node()
            node.setInitialState(RenderState.make(
                LightAttrib.makeAllOff(), TextureAttrib.makeAllOff(), ColorScaleAttrib.makeIdentity(),
                TransparencyAttrib.make(TransparencyAttrib.M_none), ColorAttrib.makeFlat((0, 0, 0, 1)), 1000))
            node.setTagStateKey("oid")
        self._set_tag_state(WEAPON_ID)

    # -- configuration -------------------------------------------------------------------

    def _set_tag_state(self, oid: int) -> None:
        state = RenderState.make(ColorAttrib.makeFlat(encode_id(oid)), 1001)
        for cam in (self.world_id_cam, self.vm_id_cam):
            cam.node().setTagState(str(oid), state)

    def resize(self, width: int, height: int) -> None:
        if (width, height) == self.size:
            return
        for p in (self.color_pass, self.id_pass):
            if p is not None:
                self.engine.removeWindow(p.buffer)
        self.color_pass = _Pass(self.engine, self.pipe, "color", width, height, 0, self.world_color_cam, self.vm_color_cam, (0.5, 0.6, 0.7, 1))
        self.id_pass = _Pass(self.engine, self.pipe, "ids", width, height, 1, self.world_id_cam, self.vm_id_cam, (0, 0, 0, 1))
        self.size = (width, height)
        self.lens.setAspectRatio(width / height)

    def set_world(self, world: World) -> None:
        if self.world is world:
            return
        if self.world is not None:
            self.world.root.detachNode()
            if self.world.sky is not None:
                self.world.sky.detachNode()
        self.world = world
        world.root.reparentTo(self.scene)
        if world.sky is not None:
            world.sky.reparentTo(self.eye)
            world.sky.setEffect(CompassEffect.make(self.scene, CompassEffect.P_rot))
        horizon = world.environment.sky_horizon
        if self.color_pass is not None:
            self.color_pass.world_region.setClearColor((*horizon, 1))
        for oid in world.objects:
            self._set_tag_state(oid)

    def set_weapon(self, weapon: NodePath) -> None:
        if self.weapon is not None:
            self.weapon.detachNode()
        self.weapon = weapon
        weapon.reparentTo(self.vm_holder)

    def set_fov(self, horizontal_fov: float) -> None:
        self.lens.setFov(horizontal_fov)
        self.lens.setAspectRatio(self.size[0] / self.size[1])

    def set_eye(self, x: float, y: float, z: float, h: float, p: float, r: float) -> None:
        self.eye.setPosHpr(x, y, z, h, p, r)

    def set_weapon_pose(self, pos: tuple[float, float, float], hpr: tuple[float, float, float]) -> None:
        self.vm_holder.setPosHpr(*pos, *hpr)

    def set_fppc_bug(self, on: bool) -> None:
        """Draw the viewmodel in the world's depth pass (the bug) or in its own pass (correct)."""
        if on == self.fppc_bug:
            return
        self.vm_holder.reparentTo(self.eye if on else self.vm_scene)
        self.fppc_bug = on

    # -- drawing ---------------------------------------------------------------------------

    def render(self, color: bool = True, ids: bool = True) -> RenderOutput:
        assert self.color_pass is not None and self.id_pass is not None, "call resize() first"
        if self.world is not None and self.color_pass.world_region.getClearColor() != (*self.world.environment.sky_horizon, 1):
            self.color_pass.world_region.setClearColor((*self.world.environment.sky_horizon, 1))
        haze = self._current_haze() if color else None
        want_ids = ids or haze is not None
        self.color_pass.buffer.setActive(color)
        self.id_pass.buffer.setActive(want_ids)
        self.engine.renderFrame()
        rgb = self.color_pass.read().copy() if color else None
        id_map = decode_ids(self.id_pass.read()) if want_ids else None
        if haze is not None and rgb is not None and id_map is not None:
            m = self.eye.getMat(self.scene)
            rotation = np.array([[m.getCell(r, c) for c in range(3)] for r in range(3)], dtype=np.float32)
            pos = self.eye.getPos(self.scene)
            rgb = haze.apply(rgb, id_map, np.array([pos[0], pos[1], pos[2]], dtype=np.float32), rotation)
        return RenderOutput(rgb=rgb, ids=id_map if ids else None)

    def _current_haze(self) -> Haze | None:
        """The distance-fog compositor for the current world, size and field of view."""
        if self.world is None or self.world.environment.haze <= 0:
            return None
        key = (id(self.world), self.size, round(self.lens.getHfov(), 6))
        if self._haze_key != key:
            self._haze = Haze(self.world, self.size[0], self.size[1], self.lens.getHfov())
            self._haze_key = key
        return self._haze


    def viewmodel_alone(self) -> np.ndarray:
        """Mask of the viewmodel drawn with no world at all: every weapon pixel the eye could see."""
        hidden = []
        if self.world is not None:
            hidden.append(self.world.root)
            if self.world.sky is not None:
                hidden.append(self.world.sky)
        for node in hidden:
            node.stash()
        try:
            out = self.render(color=False, ids=True)
        finally:
            for node in hidden:
                node.unstash()
        assert out.ids is not None
        return out.ids == WEAPON_ID


_RENDERER: list[PlaytestRenderer] = []


def get_renderer() -> PlaytestRenderer:
    """The process-wide renderer (created on first use)."""
    if not _RENDERER:
        _RENDERER.append(PlaytestRenderer())
    return _RENDERER[0]
