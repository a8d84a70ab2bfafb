"""Soft blob shadows under trees, draped over the terrain.

The software renderer has no shadow mapping, and a park without shadows looks flat. Each caster
gets a dark, alpha-faded ellipse on the ground, pushed away from the sun. The shadows are children
of the ground object, so the ID pass reports their pixels as ground, which is what they are.
"""

from __future__ import annotations

import math
from typing import Callable

from panda3d.core import NodePath, TransparencyAttrib

from bugdet.playtest.meshes import MeshBuilder
from bugdet.playtest.world import Environment

LIFT = 0.05  # metres above the ground, enough for the 24-bit depth buffer at park distances


def sun_offset(env: Environment, height: float, limit: float = 3.0) -> tuple[float, float]:
    """Horizontal displacement of a shadow cast by something ``height`` metres up."""
    h, p = math.radians(env.sun_hpr[0]), math.radians(env.sun_hpr[1])
    dx, dy, dz = -math.sin(h) * math.cos(p), math.cos(h) * math.cos(p), math.sin(p)
    if dz >= -1e-3:
        return 0.0, 0.0
    scale = min(height / -dz, limit / max(math.hypot(dx, dy), 1e-6))
    return dx * scale, dy * scale


def blob_shadows(casters: list[tuple[float, float, float, float]], env: Environment,
                 height: Callable[[float, float], float], strength: float = 0.55) -> NodePath:
    """One node with a shadow per caster ``(x, y, radius, caster height)``."""
    mb = MeshBuilder()
    segments = 14
    for x, y, radius, caster_height in casters:
        ox, oy = sun_offset(env, caster_height * 0.6)
        cx, cy = x + ox * 0.5, y + oy * 0.5
        stretch = 1.0 + math.hypot(ox, oy) / max(4.0 * radius, 1e-6)
        ux, uy = (ox, oy) if math.hypot(ox, oy) > 1e-6 else (1.0, 0.0)
        norm = math.hypot(ux, uy)
        ux, uy = ux / norm, uy / norm
        centre = mb.vertex((cx, cy, height(cx, cy) + LIFT), (0, 0, 1), (0, 0), (0.0, 0.0, 0.0, strength))
        ring = []
        for k in range(segments):
            a = 2 * math.pi * k / segments
            along, across = math.cos(a) * radius * stretch, math.sin(a) * radius
            px, py = cx + ux * along - uy * across, cy + uy * along + ux * across
            ring.append(mb.vertex((px, py, height(px, py) + LIFT), (0, 0, 1), (0, 0), (0.0, 0.0, 0.0, 0.0)))
        for k in range(segments):
            mb.triangles.append((centre, ring[k], ring[(k + 1) % segments]))
    node = NodePath(mb.build("blob_shadows"))
    node.setTransparency(TransparencyAttrib.M_alpha)
    node.setDepthWrite(False)
    node.setLightOff(1)
    node.setTextureOff(1)
    node.setBin("transparent", 0)
    return node
