"""Procedural triangle meshes (boxes, cylinders, spheres, terrain grids) as Panda3D GeomNodes.

Everything in the playtest world is built from these few primitives, so the world needs no model
files; vertex colours carry tint and baked shading, UVs are in metres so textures tile at a
physical scale whatever the object's size.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np
from panda3d.core import (
    Geom,
    GeomNode,
    GeomTriangles,
    GeomVertexArrayFormat,
    GeomVertexData,
    GeomVertexFormat,
    InternalName,
)

Vec3 = Sequence[float]
Color = Sequence[float]


class MeshBuilder:
    """Accumulates triangles, then emits one GeomNode (one Geom: cheap to cull and draw)."""

    def __init__(self) -> None:
        self.positions: list[tuple[float, float, float]] = []
        self.normals: list[tuple[float, float, float]] = []
        self.colors: list[tuple[float, float, float, float]] = []
        self.uvs: list[tuple[float, float]] = []
        self.triangles: list[tuple[int, int, int]] = []
        #: optional baked light: a direction (unit) and ambient level; colours get shaded at add time
        self.bake_light: tuple[np.ndarray, float] | None = None

    def _shade(self, color: Color, normal: Vec3) -> tuple[float, float, float, float]:
        if self.bake_light is None:
            return (color[0], color[1], color[2], color[3] if len(color) > 3 else 1.0)
        direction, ambient = self.bake_light
        lambert = max(0.0, float(np.dot(direction, normal)))
        k = ambient + (1.0 - ambient) * lambert
        return (min(1.0, color[0] * k), min(1.0, color[1] * k), min(1.0, color[2] * k), 1.0)

    def vertex(self, pos: Vec3, normal: Vec3, uv: tuple[float, float], color: Color) -> int:
        self.positions.append((float(pos[0]), float(pos[1]), float(pos[2])))
        self.normals.append((float(normal[0]), float(normal[1]), float(normal[2])))
        self.uvs.append((float(uv[0]), float(uv[1])))
        self.colors.append(self._shade(color, normal))
        return len(self.positions) - 1

    def quad(self, corners: Sequence[Vec3], normal: Vec3, uvs: Sequence[tuple[float, float]], color: Color) -> None:
        """Counter-clockwise corners seen from the side the normal points to."""
        idx = [self.vertex(c, normal, uv, color) for c, uv in zip(corners, uvs)]
        self.triangles.append((idx[0], idx[1], idx[2]))
        self.triangles.append((idx[0], idx[2], idx[3]))

    def box(self, center: Vec3, size: Vec3, color: Color, uv_scale: float = 1.0, faces: str = "xXyYzZ") -> None:
        """Axis-aligned box; ``faces`` picks which of -x,+x,-y,+y,-z,+z to emit; UVs in metres / uv_scale."""
        cx, cy, cz = center
        hx, hy, hz = size[0] / 2, size[1] / 2, size[2] / 2
        s = 1.0 / uv_scale
        x0, x1, y0, y1, z0, z1 = cx - hx, cx + hx, cy - hy, cy + hy, cz - hz, cz + hz
        sx, sy, sz = size[0] * s, size[1] * s, size[2] * s
        if "y" in faces:
            self.quad([(x0, y0, z0), (x1, y0, z0), (x1, y0, z1), (x0, y0, z1)], (0, -1, 0), [(0, 0), (sx, 0), (sx, sz), (0, sz)], color)
        if "Y" in faces:
            self.quad([(x1, y1, z0), (x0, y1, z0), (x0, y1, z1), (x1, y1, z1)], (0, 1, 0), [(0, 0), (sx, 0), (sx, sz), (0, sz)], color)
        if "x" in faces:
            self.quad([(x0, y1, z0), (x0, y0, z0), (x0, y0, z1), (x0, y1, z1)], (-1, 0, 0), [(0, 0), (sy, 0), (sy, sz), (0, sz)], color)
        if "X" in faces:
            self.quad([(x1, y0, z0), (x1, y1, z0), (x1, y1, z1), (x1, y0, z1)], (1, 0, 0), [(0, 0), (sy, 0), (sy, sz), (0, sz)], color)
        if "Z" in faces:
            self.quad([(x0, y0, z1), (x1, y0, z1), (x1, y1, z1), (x0, y1, z1)], (0, 0, 1), [(0, 0), (sx, 0), (sx, sy), (0, sy)], color)
        if "z" in faces:
            self.quad([(x0, y1, z0), (x1, y1, z0), (x1, y0, z0), (x0, y0, z0)], (0, 0, -1), [(0, 0), (sx, 0), (sx, sy), (0, sy)], color)

    def cylinder(
        self, base: Vec3, radius_bottom: float, radius_top: float, height: float, color: Color,
        segments: int = 8, axis: str = "z", uv_scale: float = 1.0, caps: bool = True,
    ) -> None:
        """A (possibly tapered) cylinder along +z, +y or +x from ``base``."""

        def place(u: float, v: float, w: float) -> tuple[float, float, float]:
            # (u, v) across the axis, w along it
            if axis == "z":
                return (base[0] + u, base[1] + v, base[2] + w)
            if axis == "y":
                return (base[0] + u, base[1] + w, base[2] + v)
            return (base[0] + w, base[1] + u, base[2] + v)

        circumference = 2 * math.pi * max(radius_bottom, radius_top)
        slope = (radius_bottom - radius_top) / max(height, 1e-6)
        for i in range(segments):
            a0 = 2 * math.pi * i / segments
            a1 = 2 * math.pi * (i + 1) / segments
            c0, s0, c1, s1 = math.cos(a0), math.sin(a0), math.cos(a1), math.sin(a1)
            n0 = np.array(place(c0, s0, slope)) - np.array(place(0, 0, 0))
            n1 = np.array(place(c1, s1, slope)) - np.array(place(0, 0, 0))
            n0 /= np.linalg.norm(n0)
            n1 /= np.linalg.norm(n1)
            u0 = circumference * i / segments / uv_scale
            u1 = circumference * (i + 1) / segments / uv_scale
            vh = height / uv_scale
            corners = [
                place(radius_bottom * c0, radius_bottom * s0, 0), place(radius_bottom * c1, radius_bottom * s1, 0),
                place(radius_top * c1, radius_top * s1, height), place(radius_top * c0, radius_top * s0, height),
            ]
            idx = [
                self.vertex(corners[0], n0, (u0, 0), color), self.vertex(corners[1], n1, (u1, 0), color),
                self.vertex(corners[2], n1, (u1, vh), color), self.vertex(corners[3], n0, (u0, vh), color),
            ]
            if axis == "y":  # the (u, v, w) -> (x, z, y) mapping mirrors the winding
                self.triangles += [(idx[0], idx[2], idx[1]), (idx[0], idx[3], idx[2])]
            else:
                self.triangles += [(idx[0], idx[1], idx[2]), (idx[0], idx[2], idx[3])]
        if caps:
            for w, r, sign in ((height, radius_top, 1.0), (0.0, radius_bottom, -1.0)):
                if r <= 0:
                    continue
                normal = np.array(place(0, 0, sign)) - np.array(place(0, 0, 0))
                centre = self.vertex(place(0, 0, w), normal, (0, 0), color)
                ring = [
                    self.vertex(place(r * math.cos(2 * math.pi * i / segments), r * math.sin(2 * math.pi * i / segments), w),
                                normal, (math.cos(2 * math.pi * i / segments) * r / uv_scale, math.sin(2 * math.pi * i / segments) * r / uv_scale), color)
                    for i in range(segments)
                ]
                flip = (sign < 0) != (axis == "y")
                for i in range(segments):
                    a, b = ring[i], ring[(i + 1) % segments]
                    self.triangles.append((centre, b, a) if flip else (centre, a, b))

    def blob(
        self, center: Vec3, radii: Vec3, color: Color, rng: np.random.Generator | None = None,
        jitter: float = 0.0, rings: int = 5, segments: int = 8, uv_scale: float = 1.0,
        color_jitter: float = 0.0,
    ) -> None:
        """A lumpy ellipsoid: foliage clusters, rocks, bushes. Jitter displaces vertices radially."""
        grid = np.zeros((rings + 1, segments, 3))
        for i in range(rings + 1):
            theta = math.pi * i / rings
            for j in range(segments):
                phi = 2 * math.pi * j / segments
                d = np.array([math.sin(theta) * math.cos(phi), math.sin(theta) * math.sin(phi), math.cos(theta)])
                k = 1.0 + (rng.uniform(-jitter, jitter) if rng is not None and jitter and 0 < i < rings else 0.0)
                grid[i, j] = d * k
        for i in range(rings):
            for j in range(segments):
                j1 = (j + 1) % segments
                pts = [grid[i, j], grid[i + 1, j], grid[i + 1, j1], grid[i, j1]]
                world = [np.array(center) + p * np.array(radii) for p in pts]
                normal = np.cross(world[1] - world[0], world[2] - world[0])
                if np.linalg.norm(normal) < 1e-9:
                    normal = np.cross(world[2] - world[0], world[3] - world[0])
                norm = np.linalg.norm(normal)
                normal = normal / norm if norm > 0 else pts[0]
                if np.dot(normal, pts[0] + pts[2]) < 0:
                    normal = -normal
                shade = 1.0 + (rng.uniform(-color_jitter, color_jitter) if rng is not None and color_jitter else 0.0)
                c = (color[0] * shade, color[1] * shade, color[2] * shade, 1.0)
                uvs = [(float(p[0] * radii[0] + p[1] * radii[1]) / uv_scale, float(p[2] * radii[2]) / uv_scale) for p in pts]
                idx = [self.vertex(w, normal, uv, c) for w, uv in zip(world, uvs)]
                # outward-facing winding
                if np.dot(np.cross(world[1] - world[0], world[2] - world[0]), normal) >= 0:
                    self.triangles += [(idx[0], idx[1], idx[2]), (idx[0], idx[2], idx[3])]
                else:
                    self.triangles += [(idx[0], idx[2], idx[1]), (idx[0], idx[3], idx[2])]

    def grid(
        self, x0: float, y0: float, x1: float, y1: float, nx: int, ny: int,
        height: Callable[[float, float], float], color: Callable[[float, float], Color], uv_scale: float = 1.0,
    ) -> None:
        """A heightfield patch with smooth normals (terrain chunks)."""
        xs = np.linspace(x0, x1, nx + 1)
        ys = np.linspace(y0, y1, ny + 1)
        eps = 0.25
        index = np.zeros((nx + 1, ny + 1), dtype=int)
        for i, x in enumerate(xs):
            for j, y in enumerate(ys):
                z = height(x, y)
                n = np.array([height(x - eps, y) - height(x + eps, y), height(x, y - eps) - height(x, y + eps), 2 * eps])
                n /= np.linalg.norm(n)
                index[i, j] = self.vertex((x, y, z), n, (x / uv_scale, y / uv_scale), color(x, y))
        for i in range(nx):
            for j in range(ny):
                a, b, c, d = index[i, j], index[i + 1, j], index[i + 1, j + 1], index[i, j + 1]
                self.triangles += [(a, b, c), (a, c, d)]

    def shade_by_height(self, z0: float, z1: float, low: float, high: float = 1.0) -> None:
        """Darken vertices towards ``z0`` (ambient occlusion near the floor, done once, for free)."""
        for k, (x, y, z) in enumerate(self.positions):
            t = min(1.0, max(0.0, (z - z0) / max(z1 - z0, 1e-6)))
            f = low + (high - low) * t
            r, g, b, a = self.colors[k]
            self.colors[k] = (r * f, g * f, b * f, a)

    def build(self, name: str) -> GeomNode:
        n = len(self.positions)
        arr = np.zeros((n, 12), dtype=np.float32)
        if n:
            arr[:, 0:3] = self.positions
            arr[:, 3:6] = self.normals
            arr[:, 6:10] = self.colors
            arr[:, 10:12] = self.uvs
        vdata = GeomVertexData(name, _float_format(), Geom.UHStatic)
        vdata.uncleanSetNumRows(n)
        memoryview(vdata.modifyArray(0)).cast("B")[:] = arr.tobytes()
        prim = GeomTriangles(Geom.UHStatic)
        prim.setIndexType(Geom.NT_uint32)
        handle = prim.modifyVertices()
        handle.uncleanSetNumRows(len(self.triangles) * 3)
        memoryview(handle).cast("B")[:] = np.asarray(self.triangles, dtype=np.uint32).tobytes()
        geom = Geom(vdata)
        geom.addPrimitive(prim)
        node = GeomNode(name)
        node.addGeom(geom)
        return node


_FORMAT: list[GeomVertexFormat] = []


def _float_format() -> GeomVertexFormat:
    """One interleaved all-float32 array, so a numpy block can be copied in with one memcpy."""
    if not _FORMAT:
        array = GeomVertexArrayFormat()
        array.addColumn(InternalName.getVertex(), 3, Geom.NT_float32, Geom.C_point)
        array.addColumn(InternalName.getNormal(), 3, Geom.NT_float32, Geom.C_normal)
        array.addColumn(InternalName.getColor(), 4, Geom.NT_float32, Geom.C_color)
        array.addColumn(InternalName.getTexcoord(), 2, Geom.NT_float32, Geom.C_texcoord)
        fmt = GeomVertexFormat()
        fmt.addArray(array)
        _FORMAT.append(GeomVertexFormat.registerFormat(fmt))
    return _FORMAT[0]
