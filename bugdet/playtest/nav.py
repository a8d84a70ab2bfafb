"""Navigation grid and A* paths, so the playtester walks around walls instead of into them.

The grid marks every cell whose centre keeps the player's radius clear of all collision
footprints (computed with numpy, one collider at a time). Paths are A* over 8-neighbour cells,
then shortened by skipping waypoints that are in straight, clear sight of each other.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass

import numpy as np

from bugdet.playtest.collision import Box, Circle, Collider


@dataclass
class NavGrid:
    x0: float
    y0: float
    cell: float
    free: np.ndarray  # bool [nx, ny]

    def to_cell(self, x: float, y: float) -> tuple[int, int]:
        i = int(np.clip((x - self.x0) / self.cell, 0, self.free.shape[0] - 1))
        j = int(np.clip((y - self.y0) / self.cell, 0, self.free.shape[1] - 1))
        return i, j

    def centre(self, i: int, j: int) -> tuple[float, float]:
        return self.x0 + (i + 0.5) * self.cell, self.y0 + (j + 0.5) * self.cell

    def is_free(self, x: float, y: float) -> bool:
        return bool(self.free[self.to_cell(x, y)])

    def nearest_free(self, i: int, j: int) -> tuple[int, int] | None:
        if self.free[i, j]:
            return i, j
        cells = np.argwhere(self.free)
        if len(cells) == 0:
            return None
        k = int(np.argmin((cells[:, 0] - i) ** 2 + (cells[:, 1] - j) ** 2))
        return int(cells[k, 0]), int(cells[k, 1])

    def _clear_line(self, a: tuple[int, int], b: tuple[int, int]) -> bool:
        n = max(abs(b[0] - a[0]), abs(b[1] - a[1])) * 2 + 1
        for t in np.linspace(0.0, 1.0, n):
            i = int(round(a[0] + (b[0] - a[0]) * t))
            j = int(round(a[1] + (b[1] - a[1]) * t))
            if not self.free[i, j]:
                return False
        return True

    def path(self, start: tuple[float, float], goal: tuple[float, float], max_nodes: int = 40000) -> list[tuple[float, float]] | None:
        """Waypoints from ``start`` to ``goal`` (ending exactly at ``goal``), or None if unreachable."""
        s = self.nearest_free(*self.to_cell(*start))
        g = self.nearest_free(*self.to_cell(*goal))
        if s is None or g is None:
            return None
        nx, ny = self.free.shape
        came: dict[tuple[int, int], tuple[int, int]] = {}
        cost = {s: 0.0}
        heap = [(0.0, 0, s)]
        tie = 0
        steps = ((1, 0, 1.0), (-1, 0, 1.0), (0, 1, 1.0), (0, -1, 1.0), (1, 1, math.sqrt(2)), (1, -1, math.sqrt(2)), (-1, 1, math.sqrt(2)), (-1, -1, math.sqrt(2)))
        expanded = 0
        while heap:
            _, _, cur = heapq.heappop(heap)
            if cur == g:
                break
            expanded += 1
            if expanded > max_nodes:
                return None
            for di, dj, w in steps:
                ni, nj = cur[0] + di, cur[1] + dj
                if not (0 <= ni < nx and 0 <= nj < ny) or not self.free[ni, nj]:
                    continue
                if di and dj and not (self.free[cur[0] + di, cur[1]] and self.free[cur[0], cur[1] + dj]):
                    continue  # no corner cutting
                nc = cost[cur] + w
                if nc < cost.get((ni, nj), math.inf):
                    cost[(ni, nj)] = nc
                    came[(ni, nj)] = cur
                    tie += 1
                    h = math.hypot(g[0] - ni, g[1] - nj)
                    heapq.heappush(heap, (nc + h, tie, (ni, nj)))
        if g not in cost:
            return None
        cells = [g]
        while cells[-1] != s:
            cells.append(came[cells[-1]])
        cells.reverse()
        # string pulling: keep only the cells where the straight line would be blocked
        pruned = [cells[0]]
        k = 0
        while k < len(cells) - 1:
            j = len(cells) - 1
            while j > k + 1 and not self._clear_line(cells[k], cells[j]):
                j -= 1
            pruned.append(cells[j])
            k = j
        points = [self.centre(i, j) for i, j in pruned[1:-1]]
        return points + [goal]


def build_nav(colliders: list[Collider], bounds: tuple[float, float, float, float], radius: float, cell: float = 0.5) -> NavGrid:
    x0, y0, x1, y1 = bounds
    nx, ny = int(math.ceil((x1 - x0) / cell)), int(math.ceil((y1 - y0) / cell))
    xs = x0 + (np.arange(nx) + 0.5) * cell
    ys = y0 + (np.arange(ny) + 0.5) * cell
    gx, gy = np.meshgrid(xs, ys, indexing="ij")
    clear = np.full((nx, ny), np.inf)
    for c in colliders:
        if isinstance(c, Circle):
            d = np.hypot(gx - c.x, gy - c.y) - c.r
        elif isinstance(c, Box):
            a = math.radians(c.heading)
            dx, dy = gx - c.x, gy - c.y
            lx, ly = dx * math.cos(a) + dy * math.sin(a), -dx * math.sin(a) + dy * math.cos(a)
            qx, qy = np.abs(lx) - c.hx, np.abs(ly) - c.hy
            d = np.hypot(np.maximum(qx, 0), np.maximum(qy, 0)) + np.minimum(np.maximum(qx, qy), 0)
        else:
            continue
        np.minimum(clear, d, out=clear)
    margin = (gx > x0 + radius) & (gx < x1 - radius) & (gy > y0 + radius) & (gy < y1 - radius)
    return NavGrid(x0, y0, cell, (clear > radius + 0.1) & margin)


def keep_reachable(grid: NavGrid, start: tuple[float, float]) -> NavGrid:
    """Only the cells connected to ``start`` (drops the sealed-off solid mass of indoor levels)."""
    s = grid.nearest_free(*grid.to_cell(*start))
    reach = np.zeros_like(grid.free)
    if s is None:
        return NavGrid(grid.x0, grid.y0, grid.cell, reach)
    stack = [s]
    reach[s] = True
    nx, ny = grid.free.shape
    while stack:
        i, j = stack.pop()
        for ni, nj in ((i + 1, j), (i - 1, j), (i, j + 1), (i, j - 1)):
            if 0 <= ni < nx and 0 <= nj < ny and grid.free[ni, nj] and not reach[ni, nj]:
                reach[ni, nj] = True
                stack.append((ni, nj))
    return NavGrid(grid.x0, grid.y0, grid.cell, reach)
