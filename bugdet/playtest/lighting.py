"""Time of day: sun and ambient light, sky dome colours, per session.

A session draws one environment from its seed, so a detector sees the same level at noon, at
dusk and under overcast skies. The software renderer lights per vertex; the sky is a gradient
dome that follows the camera and is drawn first without writing depth.
"""

from __future__ import annotations

import math

import numpy as np
from panda3d.core import AmbientLight, DirectionalLight, NodePath

from bugdet.playtest.meshes import MeshBuilder
from bugdet.playtest.world import Environment

OUTDOOR = (
    Environment("noon", (30, -60, 0), (1.0, 0.97, 0.9), (0.42, 0.45, 0.5), (0.25, 0.5, 0.9), (0.7, 0.82, 0.95), (1.0, 1.0, 1.0), 0.45),
    Environment("morning", (100, -25, 0), (1.0, 0.85, 0.65), (0.4, 0.42, 0.5), (0.35, 0.55, 0.85), (0.95, 0.8, 0.65), (1.0, 0.93, 0.85), 0.6),
    Environment("evening", (250, -15, 0), (1.0, 0.6, 0.35), (0.35, 0.3, 0.4), (0.2, 0.22, 0.45), (0.95, 0.55, 0.35), (0.95, 0.8, 0.7), 0.55),
    Environment("overcast", (60, -70, 0), (0.65, 0.67, 0.7), (0.55, 0.56, 0.6), (0.5, 0.53, 0.58), (0.75, 0.77, 0.8), (0.85, 0.87, 0.9), 0.75),
)
INDOOR = (
    Environment("fluorescent", (20, -75, 0), (0.9, 0.95, 1.0), (0.45, 0.47, 0.5), (0.1, 0.1, 0.1), (0.1, 0.1, 0.1), (0.95, 0.97, 1.0)),
    Environment("warm", (200, -60, 0), (1.0, 0.8, 0.55), (0.38, 0.33, 0.3), (0.1, 0.1, 0.1), (0.1, 0.1, 0.1), (1.0, 0.88, 0.75)),
    Environment("dim", (120, -50, 0), (0.6, 0.62, 0.75), (0.25, 0.26, 0.32), (0.05, 0.05, 0.05), (0.05, 0.05, 0.05), (0.7, 0.72, 0.8)),
)


def pick_environment(rng: np.random.Generator, indoor: bool) -> Environment:
    options = INDOOR if indoor else OUTDOOR
    return options[int(rng.integers(len(options)))]


def apply_lights(root: NodePath, env: Environment) -> None:
    """Attach the environment's sun and ambient light to the world root."""
    sun = DirectionalLight("sun")
    sun.setColor((*env.sun_color, 1.0))
    sun_np = root.attachNewNode(sun)
    sun_np.setHpr(*env.sun_hpr)
    root.setLight(sun_np)
    fill = DirectionalLight("fill")  # a weak opposite light so shadowed sides are not flat
    fill.setColor((env.ambient_color[0] * 0.35, env.ambient_color[1] * 0.35, env.ambient_color[2] * 0.4, 1.0))
    fill_np = root.attachNewNode(fill)
    fill_np.setHpr(env.sun_hpr[0] + 180, -20, 0)
    root.setLight(fill_np)
    amb = AmbientLight("ambient")
    amb.setColor((*env.ambient_color, 1.0))
    root.setLight(root.attachNewNode(amb))


def make_sky(env: Environment, radius: float = 150.0) -> NodePath:
    """A gradient dome (horizon colour to zenith colour, darker below), unlit, drawn first."""
    mb = MeshBuilder()
    rings, segments = 8, 16
    top, horizon = np.array(env.sky_top), np.array(env.sky_horizon)

    def color(elev: float) -> tuple[float, float, float, float]:
        if elev >= 0:
            t = min(1.0, elev / (math.pi / 2)) ** 0.6
            c = horizon + (top - horizon) * t
        else:
            c = horizon * 0.8
        return (float(c[0]), float(c[1]), float(c[2]), 1.0)

    for i in range(rings):
        e0 = -math.pi / 6 + (math.pi / 2 + math.pi / 6) * i / rings
        e1 = -math.pi / 6 + (math.pi / 2 + math.pi / 6) * (i + 1) / rings
        for j in range(segments):
            a0, a1 = 2 * math.pi * j / segments, 2 * math.pi * (j + 1) / segments
            pts = [(e0, a0), (e0, a1), (e1, a1), (e1, a0)]
            idx = [
                mb.vertex((radius * math.cos(e) * math.cos(a), radius * math.cos(e) * math.sin(a), radius * math.sin(e)), (0, 0, -1), (0, 0), color(e))
                for e, a in pts
            ]
            mb.triangles += [(idx[0], idx[2], idx[1]), (idx[0], idx[3], idx[2])]
    sky = NodePath(mb.build("sky"))
    sky.setBin("background", 0)
    sky.setDepthWrite(False)
    sky.setDepthTest(False)
    sky.setLightOff(1)
    sky.setTextureOff(1)
    return sky
