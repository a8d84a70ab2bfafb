"""First-person weapon viewmodels and their animation (bob, sway, recoil, reload).

The weapons are procedural (boxes and cylinders with lighting baked into vertex colours, so they
look identical whichever pass draws them). They deliberately reach far forward, as real
viewmodels do: a rifle barrel ends about a metre in front of the eye while the player's
collision radius keeps walls only ~0.3 m away. Drawn in its own pass that is invisible; drawn
in the world's depth pass (the FPPC bug) the barrel sinks into whatever the player faces.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from panda3d.core import NodePath

from bugdet.playtest.meshes import MeshBuilder

WEAPONS = ("rifle", "shotgun", "pistol")
_LIGHT = np.array([-0.45, -0.35, 0.82]) / np.linalg.norm([-0.45, -0.35, 0.82])

GUNMETAL = (0.22, 0.23, 0.25, 1.0)
POLYMER = (0.13, 0.13, 0.14, 1.0)
WOOD = (0.5, 0.3, 0.16, 1.0)
SKIN = (0.86, 0.66, 0.52, 1.0)
GLOVE = (0.16, 0.15, 0.13, 1.0)
SLEEVE = (0.32, 0.36, 0.24, 1.0)


def _arms(mb: MeshBuilder, right_hand: tuple[float, float, float], left_hand: tuple[float, float, float] | None) -> None:
    """Gloved hands on the weapon and sleeves running back out of the bottom of the screen."""
    rx, ry, rz = right_hand
    mb.box((rx, ry, rz), (0.055, 0.09, 0.09), GLOVE)
    mb.box((rx, ry - 0.03, rz + 0.045), (0.05, 0.05, 0.03), SKIN)
    _sleeve(mb, (rx + 0.01, ry - 0.05, rz - 0.02), (rx + 0.16, ry - 0.55, rz - 0.3))
    if left_hand is not None:
        lx, ly, lz = left_hand
        mb.box((lx, ly, lz), (0.07, 0.1, 0.06), GLOVE)
        mb.box((lx + 0.01, ly + 0.02, lz + 0.03), (0.04, 0.07, 0.025), SKIN)
        _sleeve(mb, (lx - 0.02, ly - 0.05, lz - 0.03), (lx - 0.28, ly - 0.55, lz - 0.3))


def _sleeve(mb: MeshBuilder, start: tuple[float, float, float], end: tuple[float, float, float]) -> None:
    """A forearm as a run of boxes from the wrist back towards the shoulder."""
    steps = 6
    for k in range(steps):
        t = (k + 0.5) / steps
        c = tuple(s + (e - s) * t for s, e in zip(start, end))
        width = 0.06 + 0.035 * t
        length = math.dist(start, end) / steps * 1.3
        mb.box(c, (width, length, width), SLEEVE)


def build_weapon(kind: str) -> NodePath:
    """Geometry of one weapon with its arms, in eye space (x right, y forward, z up)."""
    mb = MeshBuilder()
    mb.bake_light = (_LIGHT, 0.38)
    if kind == "rifle":
        mb.box((0, 0.32, 0), (0.06, 0.36, 0.09), GUNMETAL)  # receiver
        mb.box((0, 0.6, 0.005), (0.065, 0.26, 0.07), POLYMER)  # handguard
        mb.cylinder((0, 0.72, 0.015), 0.014, 0.014, 0.34, GUNMETAL, segments=8, axis="y")  # barrel
        mb.box((0, 1.04, 0.015), (0.03, 0.05, 0.03), POLYMER)  # muzzle brake
        mb.box((0, 0.4, -0.1), (0.04, 0.08, 0.14), POLYMER)  # magazine
        mb.box((0, 0.22, -0.08), (0.035, 0.05, 0.1), POLYMER)  # grip
        mb.box((0, 0.05, -0.015), (0.045, 0.2, 0.08), POLYMER)  # stock
        mb.box((0, 0.3, 0.065), (0.035, 0.16, 0.04), GUNMETAL)  # optic body
        mb.box((0, 0.3, 0.09), (0.045, 0.05, 0.02), GUNMETAL)
        _arms(mb, (0.0, 0.2, -0.1), (-0.01, 0.62, -0.045))
    elif kind == "shotgun":
        mb.box((0, 0.3, 0), (0.065, 0.3, 0.1), GUNMETAL)
        mb.cylinder((0, 0.45, 0.02), 0.02, 0.02, 0.55, GUNMETAL, segments=8, axis="y")  # barrel
        mb.cylinder((0, 0.45, -0.025), 0.017, 0.017, 0.48, GUNMETAL, segments=8, axis="y")  # tube magazine
        mb.box((0, 0.66, -0.025), (0.06, 0.2, 0.06), WOOD)  # pump
        mb.box((0, 0.06, -0.03), (0.05, 0.26, 0.09), WOOD)  # stock
        mb.box((0, 0.2, -0.08), (0.035, 0.05, 0.09), WOOD)
        _arms(mb, (0.0, 0.19, -0.1), (-0.01, 0.66, -0.07))
    elif kind == "pistol":
        mb.box((0, 0.55, 0.0), (0.035, 0.2, 0.045), GUNMETAL)  # slide
        mb.box((0, 0.53, -0.035), (0.032, 0.16, 0.03), POLYMER)  # frame
        mb.box((0, 0.47, -0.09), (0.032, 0.05, 0.11), POLYMER)  # grip
        mb.box((0, 0.66, 0.0), (0.02, 0.04, 0.02), GUNMETAL)
        _arms(mb, (0.0, 0.46, -0.12), (-0.03, 0.46, -0.14))
    else:
        raise ValueError(f"unknown weapon {kind!r}; known: {', '.join(WEAPONS)}")
    node = NodePath(mb.build(kind))
    node.setLightOff(1)
    node.setTextureOff(1)
    flash = node.attachNewNode(_muzzle_flash(MUZZLE[kind]))
    flash.setName("muzzle_flash")
    flash.hide()
    return node


#: muzzle position of each weapon in its own frame
MUZZLE = {"rifle": (0.0, 1.08, 0.015), "shotgun": (0.0, 1.01, 0.02), "pistol": (0.0, 0.68, 0.0)}


def _muzzle_flash(at: tuple[float, float, float]):
    """A star of bright quads at the muzzle, shown for the first frames after a shot."""
    mb = MeshBuilder()
    x, y, z = at
    core, outer = (1.0, 0.95, 0.7, 1.0), (1.0, 0.65, 0.2, 1.0)
    for k in range(4):
        a = math.pi * k / 4
        dx, dz = math.cos(a) * 0.09, math.sin(a) * 0.09
        for sign in (1, -1):  # both windings, so the star shows from any side
            corners = [(x - dx, y, z - dz), (x + dx, y, z + dz), (x + dx * 0.3, y + 0.12, z + dz * 0.3), (x - dx * 0.3, y + 0.12, z - dz * 0.3)]
            if sign < 0:
                corners = corners[::-1]
            mb.quad(corners, (0, -sign, 0), [(0, 0)] * 4, outer)
    mb.box((x, y + 0.02, z), (0.06, 0.05, 0.06), core)
    return mb.build("muzzle_flash")


def set_muzzle_flash(weapon: NodePath, on: bool) -> None:
    flash = weapon.find("muzzle_flash")
    if not flash.isEmpty():
        flash.show() if on else flash.hide()


#: where each weapon sits relative to the eye (right, forward, down) and its slight inward yaw
HOLD = {"rifle": ((0.16, 0.02, -0.17), -3.0), "shotgun": ((0.16, 0.02, -0.18), -3.0), "pistol": ((0.12, 0.06, -0.13), -5.0)}


@dataclass
class ViewmodelAnimator:
    """Procedural first-person animation driven by the player's motion and actions."""

    weapon: str
    bob_phase: float = 0.0
    sway_h: float = 0.0
    sway_p: float = 0.0
    recoil: float = 0.0
    reload_t: float = -1.0  # < 0: not reloading; else seconds into the lower/raise cycle

    RELOAD_TIME = 1.6

    def fire(self) -> None:
        self.recoil = 1.0

    def start_reload(self) -> None:
        if self.reload_t < 0:
            self.reload_t = 0.0

    @property
    def busy(self) -> bool:
        return self.reload_t >= 0

    @property
    def flash(self) -> bool:
        """The muzzle flash shows for about two frames after a shot."""
        return self.recoil > 0.6

    def step(self, dt: float, speed: float, yaw_rate: float, pitch_rate: float) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
        """Advance by ``dt`` and return the weapon's (pos, hpr) in eye space."""
        self.bob_phase += dt * (2.0 * math.pi * 1.8) * min(speed / 3.0, 1.2)
        move = min(speed / 3.0, 1.0)
        # sway lags the turn: the weapon trails behind the view
        self.sway_h += (float(np.clip(-yaw_rate * 0.03, -6, 6)) - self.sway_h) * min(1.0, dt * 8)
        self.sway_p += (float(np.clip(-pitch_rate * 0.03, -4, 4)) - self.sway_p) * min(1.0, dt * 8)
        self.recoil *= math.exp(-dt * 12.0)
        (bx, by, bz), yaw = HOLD[self.weapon]
        x = bx + 0.012 * move * math.sin(self.bob_phase) + self.sway_h * 0.004
        z = bz - 0.01 * move * abs(math.cos(self.bob_phase)) + self.sway_p * 0.003
        y = by - 0.06 * self.recoil
        h = yaw + self.sway_h
        p = self.sway_p + 6.0 * self.recoil
        r = 1.5 * move * math.sin(self.bob_phase)
        if self.reload_t >= 0:
            self.reload_t += dt
            t = self.reload_t / self.RELOAD_TIME
            if t >= 1.0:
                self.reload_t = -1.0
            else:
                lower = math.sin(math.pi * t)  # down and tilted, then back up
                z -= 0.07 * lower
                p -= 18.0 * lower
                r += 20.0 * lower
        return (x, y, z), (h, p, r)
