"""The autonomous playtester: seeded routes with real collision and tester-like behaviours.

A game tester does not just walk around: they hug walls, push into corners, brush past trees and
rocks, and spin around right next to geometry, because that is where clipping bugs live. The
player here picks such tasks at random (seeded) between stretches of plain exploration, and the
bug scheduler can ask for a specific one (push into the nearest obstacle, look at a chosen
object) so that a scheduled bug is actually seen. Movement is a circle sliding against the
world's footprints (:mod:`bugdet.playtest.collision`), so the player never passes through walls.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from bugdet.playtest.collision import clearance, push_out, ray_distance
from bugdet.playtest.world import World

RADIUS = 0.3
EYE_HEIGHT = 1.7
WALK_SPEED = 3.0
TURN_RATE = 140.0  # degrees per second


def heading_to(dx: float, dy: float) -> float:
    """Panda3D heading that looks along (dx, dy): 0 = +y, counter-clockwise."""
    return math.degrees(math.atan2(-dx, dy))


def angle_diff(a: float, b: float) -> float:
    return (a - b + 180.0) % 360.0 - 180.0


@dataclass
class Task:
    kind: str  # walk | push | hug | turn | look
    target: tuple[float, float]
    face: float | None = None  # heading to hold once there
    duration: float = 2.0
    waypoints: list[tuple[float, float]] | None = None
    elapsed: float = 0.0
    arrived: bool = False
    pitch: float = 0.0
    requested: bool = False


@dataclass
class PlayerState:
    x: float
    y: float
    z: float
    h: float
    p: float
    speed: float
    yaw_rate: float
    pitch_rate: float
    task: str
    in_position: bool


class Player:
    def __init__(self, world: World, rng: np.random.Generator):
        self.world = world
        self.rng = rng
        self.x, self.y = push_out(world.colliders, *world.spawn, RADIUS)
        self.h = float(rng.uniform(0, 360))
        self.p = 0.0
        self.task: Task | None = None
        self._progress_check = (self.x, self.y, 0.0)

    # -- task choice -----------------------------------------------------------------------

    def _free_point(self, near: tuple[float, float] | None = None, spread: float = 12.0) -> tuple[float, float]:
        """A reachable walkable point, anywhere or around ``near``."""
        nav = self.world.nav
        x0, y0, x1, y1 = self.world.bounds
        for _ in range(40):
            if near is None:
                x, y = self.rng.uniform(x0 + 1, x1 - 1), self.rng.uniform(y0 + 1, y1 - 1)
            else:
                x = float(np.clip(near[0] + self.rng.normal(0, spread), x0 + 1, x1 - 1))
                y = float(np.clip(near[1] + self.rng.normal(0, spread), y0 + 1, y1 - 1))
            if nav is not None and not nav.is_free(x, y):
                continue
            d, _ = clearance(self.world.colliders, x, y)
            if d > RADIUS + 0.3:
                return float(x), float(y)
        return self.x, self.y

    def _route(self, goal: tuple[float, float]) -> tuple[tuple[float, float], list[tuple[float, float]]]:
        """First waypoint and the rest of a path around obstacles (straight if there is no grid)."""
        nav = self.world.nav
        points = nav.path((self.x, self.y), goal) if nav is not None else None
        if not points:
            return goal, []
        return points[0], points[1:]

    def _nearest_surface(self) -> tuple[float, float]:
        _, nearest = clearance(self.world.colliders, self.x, self.y)
        if nearest is None:
            return self.x, self.y
        return nearest.closest_point(self.x, self.y)

    def _random_task(self) -> Task:
        roll = self.rng.random()
        if roll < 0.5:
            first, rest = self._route(self._free_point((self.x, self.y)))
            return Task("walk", first, waypoints=rest, duration=15.0)
        if roll < 0.62:
            return self.push_task(duration=float(self.rng.uniform(1.0, 2.5)))
        if roll < 0.76:
            return self._hug_task()
        if roll < 0.9:
            return self._brush_task()
        return Task("turn", (self.x, self.y), face=self.h + float(self.rng.choice([-1, 1]) * self.rng.uniform(90, 200)), duration=2.0)

    def push_task(self, duration: float = 2.0, requested: bool = False, tall_only: bool = False) -> Task:
        """Walk into the nearest obstacle and keep pushing (corners, walls, trunks, rocks).

        ``tall_only`` picks only obstacles that reach the weapon's height (walls, houses, trunks,
        pillars, doors): the weapon passes over rocks, crates and benches.
        """
        if not tall_only:
            sx, sy = self._nearest_surface()
            return Task("push", (sx, sy), duration=duration, requested=requested, pitch=float(self.rng.uniform(-8, 4)))
        tall = {"wall", "building", "tree", "pillar", "door"}

        def reaches_weapon(c) -> bool:
            return self.world.objects[c.oid].category in tall

        options = [c for c in self.world.colliders if reaches_weapon(c)]
        if not options:
            return self.push_task(duration, requested)
        nearest = min(options, key=lambda c: (c.signed_distance(self.x, self.y), c.oid))
        sx, sy = nearest.closest_point(self.x, self.y)
        return Task("push", (sx, sy), duration=duration, requested=requested, pitch=float(self.rng.uniform(-8, 4)))

    def _hug_task(self) -> Task:
        """Walk along the nearest wall at arm's length, glancing at it."""
        sx, sy = self._nearest_surface()
        dx, dy = self.x - sx, self.y - sy
        norm = math.hypot(dx, dy) or 1.0
        nx, ny = dx / norm, dy / norm
        tx, ty = -ny, nx
        side = 1.0 if self.rng.random() < 0.5 else -1.0
        offset = RADIUS + 0.08
        waypoints = [(sx + nx * offset + tx * side * k * 1.5, sy + ny * offset + ty * side * k * 1.5) for k in range(1, 6)]
        return Task("hug", waypoints[0], waypoints=waypoints[1:], duration=8.0)

    def _brush_task(self) -> Task:
        """Pass an obstacle so close that the shoulder grazes it."""
        _, nearest = clearance(self.world.colliders, self.x, self.y)
        if nearest is None:
            return Task("walk", self._free_point(), duration=10.0)
        sx, sy = nearest.closest_point(self.x, self.y)
        dx, dy = sx - self.x, sy - self.y
        norm = math.hypot(dx, dy) or 1.0
        side = 1.0 if self.rng.random() < 0.5 else -1.0
        px, py = -dy / norm * side, dx / norm * side
        graze = (sx + px * (RADIUS + 0.05), sy + py * (RADIUS + 0.05))
        beyond = (graze[0] + dx / norm * 4.0, graze[1] + dy / norm * 4.0)
        return Task("walk", graze, waypoints=[beyond], duration=8.0)

    def look_task(self, point: tuple[float, float], distance: float, pitch: float = 0.0, face: float | None = None) -> Task:
        """Stand ``distance`` from ``point`` with a clear view of it and look at it."""
        if face is None:
            dx, dy = self.x - point[0], self.y - point[1]
        else:
            a = math.radians(face)
            dx, dy = math.sin(a), -math.cos(a)  # back along the facing direction
        norm = math.hypot(dx, dy) or 1.0
        dx, dy = dx / norm, dy / norm
        view = heading_to(-dx, -dy)
        free = ray_distance(self.world.colliders, point[0] + dx * 0.5, point[1] + dy * 0.5, heading_to(dx, dy), max_dist=distance)
        d = max(1.2, min(distance, free + 0.5 - RADIUS - 0.2))
        stand = push_out(self.world.colliders, point[0] + dx * d, point[1] + dy * d, RADIUS)
        first, rest = self._route(stand)
        return Task("look", first, waypoints=rest, face=view if face is None else face, duration=4.0, requested=True, pitch=pitch)

    def request(self, task: Task) -> None:
        """The bug scheduler steering the player (replaces whatever it was doing).

        A far test point is reached by jumping there, as QA bots do, rather than by a long walk."""
        if task.kind == "push" and math.hypot(task.target[0] - self.x, task.target[1] - self.y) > 8.0:
            tx, ty = task.target
            dx, dy = self.x - tx, self.y - ty
            norm = math.hypot(dx, dy) or 1.0
            self.x, self.y = push_out(self.world.colliders, tx + dx / norm * (RADIUS + 1.0), ty + dy / norm * (RADIUS + 1.0), RADIUS)
            self.h = heading_to(tx - self.x, ty - self.y)
        if task.kind == "look":
            route = [task.target] + (task.waypoints or [])
            length = sum(math.dist(a, b) for a, b in zip([(self.x, self.y)] + route[:-1], route))
            if length > 8.0:
                self.x, self.y = push_out(self.world.colliders, *route[-1], RADIUS)
                task.target, task.waypoints = route[-1], []
        self.task = task
        self._progress_check = (self.x, self.y, 0.0)

    # -- motion ------------------------------------------------------------------------------

    def step(self, dt: float) -> PlayerState:
        if self.task is None:
            self.task = self._random_task()
            self._progress_check = (self.x, self.y, 0.0)
        task = self.task
        task.elapsed += dt
        old_h, old_p = self.h, self.p
        tx, ty = task.target
        dist = math.hypot(tx - self.x, ty - self.y)
        speed = 0.0
        if task.kind == "turn":
            want = task.face if task.face is not None else self.h
            self._turn_towards(want, dt, rate=100.0)
            task.arrived = abs(angle_diff(want, self.h)) < 3
        elif task.kind == "push":
            want = heading_to(tx - self.x, ty - self.y) if dist > 0.05 else self.h
            if task.arrived:
                want += 6.0 * math.sin(task.elapsed * 2.0)  # testers wiggle the view against the wall
            self._turn_towards(want, dt)
            speed = self._advance(want, dt, WALK_SPEED * (0.6 if dist < 1.0 else 1.0))
            contact, _ = clearance(self.world.colliders, self.x, self.y)
            if contact < RADIUS + 0.02 and abs(angle_diff(heading_to(tx - self.x, ty - self.y), self.h)) < 25:
                task.arrived = True
        else:  # walk, hug, look: go to the target, then the next waypoint or the final facing
            if dist > 0.25:
                want = heading_to(tx - self.x, ty - self.y)
                if task.kind == "hug" and task.waypoints is not None:
                    want += 12.0 * math.sin(task.elapsed * 1.3)
                self._turn_towards(want, dt)
                speed = self._advance(want, dt, WALK_SPEED)
            elif task.waypoints:
                task.target = task.waypoints.pop(0)
            else:
                if task.face is not None:
                    self._turn_towards(task.face, dt)
                    task.arrived = abs(angle_diff(task.face, self.h)) < 4
                else:
                    task.arrived = True
        # pitch drifts towards the task's pitch with a little idle motion
        want_p = task.pitch + 2.0 * math.sin(task.elapsed * 0.7)
        self.p += (want_p - self.p) * min(1.0, dt * 3)
        self._finish_if_done(task, dt)
        z = self.world.height(self.x, self.y) + EYE_HEIGHT
        return PlayerState(
            x=self.x, y=self.y, z=z, h=self.h % 360.0, p=self.p, speed=speed,
            yaw_rate=angle_diff(self.h, old_h) / dt, pitch_rate=(self.p - old_p) / dt,
            task=task.kind, in_position=task.arrived,
        )

    def _finish_if_done(self, task: Task, dt: float) -> None:
        done = task.elapsed > task.duration and (task.kind != "walk" or task.arrived)
        if task.kind in ("walk", "hug") and task.arrived:
            done = True
        if task.kind in ("walk", "hug", "look") and not task.arrived:
            x0, y0, t0 = self._progress_check
            if task.elapsed - t0 > 1.0:
                tx, ty = task.target
                closer = math.hypot(tx - x0, ty - y0) - math.hypot(tx - self.x, ty - self.y)
                if closer < 1.0:
                    if task.requested:
                        # blocked on the way: like a QA bot, jump to the test point
                        final = task.waypoints[-1] if task.waypoints else task.target
                        self.x, self.y = push_out(self.world.colliders, *final, RADIUS)
                        task.target, task.waypoints = final, None
                    else:  # stuck against something: give up on this target
                        done = True
                self._progress_check = (self.x, self.y, task.elapsed)
        if task.kind == "walk" and task.elapsed > task.duration:
            done = True
        if task.requested and task.elapsed < 30.0 and not (task.kind == "look" and task.elapsed > 8.0):
            done = False  # the scheduler decides when a requested task ends
        if done:
            self.task = None

    def release(self) -> None:
        """The scheduler is done with its requested task."""
        self.task = None

    def _turn_towards(self, want: float, dt: float, rate: float = TURN_RATE) -> None:
        diff = angle_diff(want, self.h)
        self.h += float(np.clip(diff, -rate * dt, rate * dt))

    def _advance(self, heading: float, dt: float, speed: float) -> float:
        err = abs(angle_diff(heading, self.h))
        if err > 70:
            return 0.0
        v = speed * (1.0 - err / 90.0)
        a = math.radians(self.h)
        nx, ny = self.x - math.sin(a) * v * dt, self.y + math.cos(a) * v * dt
        x0, y0, x1, y1 = self.world.bounds
        nx, ny = float(np.clip(nx, x0 + RADIUS, x1 - RADIUS)), float(np.clip(ny, y0 + RADIUS, y1 - RADIUS))
        nx, ny = push_out(self.world.colliders, nx, ny, RADIUS)
        moved = math.hypot(nx - self.x, ny - self.y) / dt
        self.x, self.y = nx, ny
        return moved
