"""The engine bugs OpenArena can show, how each is switched on, and its exact ground truth.

Each bug is a *variant* of the replay: engine settings (cvars on the command line) and/or a pk3
of shader overrides (:mod:`.assets`). The demo replays frame-exactly, so a frame's ground truth
is the per-pixel difference between the bug replay and the clean replay of the same frame:

=====================  ===============================================================
``low_res_texture``    ``r_picmip 3..4``: every texture loaded at 1/8..1/16 resolution
``missing_texture``    shader overrides pointing ~25% of the map's textures at a missing image
``stretched_texture``  shader overrides drawing ~25% of the map's textures with ``tcMod scale``
``camera_clipping``    an oversized near plane (``r_znear`` 40..64 units, default 4): walls
                       closer than it are cut away and the view shows through them (the
                       first-person weapon, nearer still, is cut as well: it is in the mask)
``z_fighting``         ``r_offsetfactor 0`` and ``r_offsetunits 0``: the polygon offset that
                       lifts decals off their wall is gone, so impact and scorch marks (and
                       the map's own decals) fight with the wall in stripes; visible only
                       where the bots' fire left marks on screen
``black_frame``        ``r_drawworld 0``: the world is not drawn and the frame shows what the
                       back buffer held before (black, or a stale loading screen) under the HUD
=====================  ===============================================================

Not reproducible with this engine (tried, see docs/worlds.md): ``fppc`` (the renderer draws the
first-person weapon with its depth range squeezed to 0..0.3, so world geometry never covers it,
even with ``cg_gunX`` pushing it forward) and ``floating_object`` (map props are part of the
compiled BSP; nothing at run time moves them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from bugdet.errors import InputError
from bugdet.worlds.openarena import assets

#: bug types this world can produce, in the capture format's order
OPENARENA_BUGS = ("camera_clipping", "missing_texture", "low_res_texture", "stretched_texture", "z_fighting", "black_frame")
#: 8-bit level change (max over channels) above which a pixel counts as changed. Two clean
#: replays of one demo differ at a few dozen pixels by at most ~12 levels (llvmpipe threads):
#: outside a mask, the bug and clean frames agree to within this.
DIFF_LEVEL = 12
#: share of the frame a bug must change to count (camera clipping: outside the weapon)
VISIBLE_SHARE = {
    "camera_clipping": 0.03,
    "missing_texture": 0.02,
    "low_res_texture": 0.02,
    "stretched_texture": 0.02,
    "z_fighting": 0.004,  # a scorch mark is small: 0.4% of the frame is ~300 pixels at 320x240
    "black_frame": 0.3,
}
_CLOSE = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))


def parse_bugs(text: str | None) -> tuple[str, ...]:
    """``"all"`` or a comma list to the bug types this world records (a clear error otherwise)."""
    if text is None or not text.strip():
        return ()
    names = OPENARENA_BUGS if text.strip() == "all" else tuple(n.strip() for n in text.split(",") if n.strip())
    unknown = [n for n in names if n not in OPENARENA_BUGS]
    if unknown:
        raise InputError(f"OpenArena cannot show bug type(s) {', '.join(unknown)}; it can show: {', '.join(OPENARENA_BUGS)}")
    return tuple(n for n in OPENARENA_BUGS if n in names)


@dataclass
class Variant:
    """One replay of the demo: its engine settings and override shaders."""

    name: str
    cvars: dict[str, str] = field(default_factory=dict)
    shaders: dict[str, str] = field(default_factory=dict)  # shader name -> replacement definition
    params: dict = field(default_factory=dict)  # what the bug was drawn with, for session.json

    def args(self) -> list[str]:
        out: list[str] = []
        for key, value in self.cvars.items():
            out += ["+set", key, value]
        return out


CLEAN = Variant("clean")
#: the weapon mask of a frame is what disappears when the gun is not drawn
NO_WEAPON = Variant("no_weapon", {"cg_drawGun": "0"})


def make_variant(bug: str, basepath: Path, map_name: str, rng: np.random.Generator,
                 cvars: dict[str, str] | None = None) -> Variant:
    """The replay settings that show ``bug`` on ``map_name``, drawn from ``rng``; ``cvars``
    replace or add engine settings (e.g. a fixed ``r_znear``)."""
    variant = _drawn_variant(bug, basepath, map_name, rng)
    if cvars:
        variant.cvars.update(cvars)
        variant.params.update(cvars)
    return variant


def _drawn_variant(bug: str, basepath: Path, map_name: str, rng: np.random.Generator) -> Variant:
    if bug == "low_res_texture":
        level = int(rng.integers(3, 5))
        return Variant(bug, {"r_picmip": str(level)}, params={"r_picmip": level})
    if bug == "camera_clipping":
        znear = int(rng.integers(40, 65))
        return Variant(bug, {"r_znear": str(znear)}, params={"r_znear": znear})
    if bug == "z_fighting":
        return Variant(bug, {"r_offsetfactor": "0", "r_offsetunits": "0"}, params={"polygon_offset": 0})
    if bug == "black_frame":
        return Variant(bug, {"r_drawworld": "0"}, params={"r_drawworld": 0})
    if bug in ("missing_texture", "stretched_texture"):
        surfaces = assets.pick_surfaces(assets.map_surfaces(basepath, map_name), rng)
        names = [s.shader for s in surfaces]
        if bug == "missing_texture":
            return Variant(bug, shaders=assets.missing_texture_shaders(surfaces), params={"surfaces": names})
        scale = float(np.round(rng.uniform(0.08, 0.2), 3))
        return Variant(bug, shaders=assets.stretched_texture_shaders(surfaces, scale),
                       params={"surfaces": names, "tcmod_scale": scale})
    raise InputError(f"OpenArena cannot show bug type {bug!r}")


def diff_mask(shown: np.ndarray, clean: np.ndarray) -> np.ndarray:
    """Pixels that differ by more than :data:`DIFF_LEVEL`, closed into solid regions.

    Closing only adds pixels, so outside the mask the two frames still agree to DIFF_LEVEL.
    """
    changed = (cv2.absdiff(shown, clean).max(axis=2) > DIFF_LEVEL).astype(np.uint8)
    return cv2.morphologyEx(changed, cv2.MORPH_CLOSE, _CLOSE).astype(bool) | changed.astype(bool)


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """The mask with enclosed holes filled: a solid object (the weapon) differs from the frame
    behind it everywhere, but not by DIFF_LEVEL where its colour happens to match the wall."""
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    filled = np.zeros(mask.shape, np.uint8)
    cv2.drawContours(filled, contours, -1, 1, thickness=cv2.FILLED)
    return filled.astype(bool) | mask


def severity(bug: str, mask: np.ndarray, weapon_mask: np.ndarray) -> float:
    """Share of the frame the bug changed; for camera clipping only the world part counts, since
    the near plane cuts the weapon on nearly every frame but the walls only near them."""
    if bug == "camera_clipping":
        return float((mask & ~weapon_mask).mean())
    return float(mask.mean())


def visible(bug: str, share: float) -> bool:
    return share >= VISIBLE_SHARE[bug]
