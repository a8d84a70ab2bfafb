"""Distance haze (fog) for outdoor scenes, applied after rendering.

``p3tinydisplay`` has no fog and no texture-coordinate generation, so fog is composited from the
object-ID pass: ground pixels get their exact distance from the eye ray's intersection with the
ground plane, every other object the distance to its centre, and the pixel is blended towards the
horizon colour by that distance. It is the same for the bug render and the correct render of a
moment, so it never creates or hides a bug.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from bugdet.playtest.world import World

START = 12.0  # metres where haze begins
END = 75.0  # metres where it reaches full strength
SKY_DISTANCE = 90.0  # what pixels above the horizon on the ground object count as (distant hills)


class Haze:
    """Per-world, per-size state: object centres, ground ID, camera-space pixel rays."""

    def __init__(self, world: World, width: int, height: int, hfov: float):
        self.world = world
        self.strength = world.environment.haze
        n = max(world.objects) + 1 if world.objects else 1
        self.centres = np.zeros((n, 3), dtype=np.float32)
        self.ground = np.zeros(n, dtype=bool)
        for oid, obj in world.objects.items():
            c = obj.node.getBounds().getCenter()
            self.centres[oid] = (c[0], c[1], c[2])
            self.ground[oid] = obj.category == "ground"
        self.ground_lut = np.concatenate([self.ground, [False]])
        tx = math.tan(math.radians(hfov) / 2)
        ty = tx * height / width
        # camera-space ray of each pixel: (x right, 1 forward, z up); linear in pixel coordinates
        self.ray_x = (((np.arange(width) + 0.5) / width * 2 - 1) * tx).astype(np.float32)
        self.ray_z = ((1 - (np.arange(height) + 0.5) / height * 2) * ty).astype(np.float32)
        self.ray_len = np.sqrt(self.ray_x[None, :] ** 2 + self.ray_z[:, None] ** 2 + 1.0).astype(np.float32)
        colour = np.array(world.environment.sky_horizon, dtype=np.float32) * 255.0
        self.fog_image = np.empty((height, width, 3), dtype=np.uint8)
        self.fog_image[:] = (colour + 0.5).astype(np.uint8)

    def amount(self, distance: np.ndarray) -> np.ndarray:
        return self.strength * np.clip((distance - START) / (END - START), 0.0, 1.0)

    def apply(self, rgb: np.ndarray, ids: np.ndarray, eye: np.ndarray, rotation: np.ndarray) -> np.ndarray:
        """``rotation``: 3x3 camera-to-world (row vectors), ``eye``: world position."""
        if self.strength <= 0:
            return rgb
        n = len(self.centres)
        lut = np.zeros(n + 1, dtype=np.float32)
        lut[:n] = self.amount(np.linalg.norm(self.centres - eye[None, :], axis=1))
        lut[0] = 0.0  # sky already carries its own gradient
        clipped = np.minimum(ids, n)  # the weapon (and anything unknown) maps to the last entry: 0
        alpha = lut[clipped]
        ground_pixels = self.ground_lut[clipped]
        if ground_pixels.any():
            # world-space vertical component of each pixel ray: a plane in pixel coordinates; the
            # ground's haze varies smoothly, so it is computed every 4th pixel and interpolated
            rx, rz, rlen = self.ray_x[::4], self.ray_z[::4], self.ray_len[::4, ::4]
            dz = (rx[None, :] * rotation[0, 2] + rz[:, None] * rotation[2, 2]) + rotation[1, 2]
            height = float(eye[2] - self.world.height(float(eye[0]), float(eye[1])))
            with np.errstate(divide="ignore", invalid="ignore"):
                dist = np.where(dz < -1e-4, height / -dz * rlen, SKY_DISTANCE)
            coarse = self.amount(np.minimum(dist, SKY_DISTANCE)).astype(np.float32)
            ground_alpha = cv2.resize(coarse, (ids.shape[1], ids.shape[0]), interpolation=cv2.INTER_LINEAR)
            alpha = np.where(ground_pixels, ground_alpha, alpha)
        alpha = alpha.astype(np.float32)
        return cv2.blendLinear(rgb, self.fog_image, 1.0 - alpha, alpha)
