"""2-D collision of the player (a circle on the ground plane) against world footprints.

The playtest player walks on the ground, so collision is solved in the horizontal plane:
trees, rocks, pillars and lamp posts are circles, walls, buildings, crates and benches are
oriented boxes. Resolution pushes the player out along the shortest axis, which makes it slide
along walls the way a game's character controller does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Circle:
    x: float
    y: float
    r: float
    oid: int = 0

    def signed_distance(self, px: float, py: float) -> float:
        return math.hypot(px - self.x, py - self.y) - self.r

    def closest_point(self, px: float, py: float) -> tuple[float, float]:
        d = math.hypot(px - self.x, py - self.y) or 1e-9
        return self.x + (px - self.x) / d * self.r, self.y + (py - self.y) / d * self.r


@dataclass(frozen=True)
class Box:
    """An oriented rectangle: centre, half extents along its local axes, heading in degrees."""

    x: float
    y: float
    hx: float
    hy: float
    heading: float = 0.0
    oid: int = 0

    def _to_local(self, px: float, py: float) -> tuple[float, float]:
        a = math.radians(self.heading)
        dx, dy = px - self.x, py - self.y
        return dx * math.cos(a) + dy * math.sin(a), -dx * math.sin(a) + dy * math.cos(a)

    def _to_world(self, lx: float, ly: float) -> tuple[float, float]:
        a = math.radians(self.heading)
        return self.x + lx * math.cos(a) - ly * math.sin(a), self.y + lx * math.sin(a) + ly * math.cos(a)

    def signed_distance(self, px: float, py: float) -> float:
        lx, ly = self._to_local(px, py)
        qx, qy = abs(lx) - self.hx, abs(ly) - self.hy
        outside = math.hypot(max(qx, 0.0), max(qy, 0.0))
        return outside + min(max(qx, qy), 0.0)

    def closest_point(self, px: float, py: float) -> tuple[float, float]:
        lx, ly = self._to_local(px, py)
        cx, cy = min(max(lx, -self.hx), self.hx), min(max(ly, -self.hy), self.hy)
        if (cx, cy) == (lx, ly):  # inside: project to the nearest edge
            if self.hx - abs(lx) < self.hy - abs(ly):
                cx = math.copysign(self.hx, lx)
            else:
                cy = math.copysign(self.hy, ly)
        return self._to_world(cx, cy)

    def corners(self) -> list[tuple[float, float]]:
        return [self._to_world(sx * self.hx, sy * self.hy) for sx, sy in ((-1, -1), (1, -1), (1, 1), (-1, 1))]


Collider = Circle | Box


def push_out(colliders: list[Collider], px: float, py: float, radius: float, iterations: int = 4) -> tuple[float, float]:
    """Move a circle of ``radius`` at (px, py) out of every collider it overlaps (slide response)."""
    for _ in range(iterations):
        moved = False
        for c in colliders:
            d = c.signed_distance(px, py)
            if d < radius:
                qx, qy = c.closest_point(px, py)
                nx, ny = px - qx, py - qy
                if d < 0:  # centre inside: the normal points from the centre to the surface
                    nx, ny = -nx, -ny
                norm = math.hypot(nx, ny) or 1e-9
                px, py = qx + nx / norm * (radius + 1e-4), qy + ny / norm * (radius + 1e-4)
                moved = True
        if not moved:
            break
    return px, py


def clearance(colliders: list[Collider], px: float, py: float) -> tuple[float, Collider | None]:
    """Distance from a point to the nearest collider surface, and that collider."""
    best, nearest = math.inf, None
    for c in colliders:
        d = c.signed_distance(px, py)
        if d < best:
            best, nearest = d, c
    return best, nearest


def ray_distance(colliders: list[Collider], ox: float, oy: float, heading_deg: float, max_dist: float = 50.0, step: float = 0.05) -> float:
    """Distance along a horizontal ray (heading: 0 = +y, counter-clockwise) to the first collider."""
    a = math.radians(heading_deg)
    dx, dy = -math.sin(a), math.cos(a)
    t = 0.0
    while t < max_dist:
        d, _ = clearance(colliders, ox + dx * t, oy + dy * t)
        if d <= 1e-3:
            return t
        t += max(d, step)
    return max_dist
