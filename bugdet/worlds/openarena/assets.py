"""What the installed game data holds: maps, the textures a map uses, and override pk3s.

The texture bugs are made the way a broken build makes them: a pk3 that loads after the game's
own (pk3s load in name order; ``zzz_`` sorts last) redefines some of the map's surfaces with
shader scripts. The *missing texture* override points a surface at an image that does not exist,
so the engine warns ``R_FindImageFile could not find`` and draws its default image; the
*stretched texture* override maps the surface's own image with ``tcMod scale`` below 1.
"""

from __future__ import annotations

import os
import struct
import zipfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from bugdet.errors import InputError

BSP_SHADER_LUMP = 1  # lump index of the shader (texture) table in a Quake 3 BSP
SURF_SKY, SURF_NODRAW = 0x4, 0x80
IMAGE_EXTS = (".tga", ".jpg", ".png")


def pk3_files(basepath: Path) -> list[Path]:
    """The game's pk3s, in load order (later ones override earlier ones)."""
    return sorted((Path(basepath) / "baseoa").glob("*.pk3"))


@dataclass(frozen=True)
class Surface:
    shader: str  # shader / texture name as the BSP names it, e.g. textures/gothic_wall/proto_brik
    image: str  # the image file in the game data the name falls back to


@lru_cache(maxsize=4)
def _image_index(basepath: str) -> dict[str, str]:
    index: dict[str, str] = {}
    for pk3 in pk3_files(Path(basepath)):
        with zipfile.ZipFile(pk3) as z:
            for name in z.namelist():
                base, ext = os.path.splitext(name)
                if ext.lower() in IMAGE_EXTS:
                    index[base.lower()] = name
    return index


@lru_cache(maxsize=4)
def available_maps(basepath: str) -> tuple[str, ...]:
    maps = set()
    for pk3 in pk3_files(Path(basepath)):
        with zipfile.ZipFile(pk3) as z:
            maps.update(Path(n).stem for n in z.namelist() if n.startswith("maps/") and n.endswith(".bsp"))
    return tuple(sorted(maps))


def _read_bsp(basepath: Path, map_name: str) -> bytes:
    for pk3 in reversed(pk3_files(basepath)):
        with zipfile.ZipFile(pk3) as z:
            try:
                return z.read(f"maps/{map_name}.bsp")
            except KeyError:
                continue
    raise InputError(f"map {map_name!r} is not in the game data ({basepath}); e.g. {', '.join(available_maps(str(basepath))[:8])}")


def map_surfaces(basepath: Path, map_name: str) -> list[Surface]:
    """The map's drawn surfaces whose look comes from one image file (sky, hidden and tool
    surfaces left out): the ones an override can visibly break."""
    data = _read_bsp(basepath, map_name)
    if data[:4] != b"IBSP":
        raise InputError(f"maps/{map_name}.bsp is not a Quake 3 BSP")
    offset, length = struct.unpack("<ii", data[8 + 8 * BSP_SHADER_LUMP: 16 + 8 * BSP_SHADER_LUMP])
    images = _image_index(str(basepath))
    surfaces = []
    for k in range(length // 72):
        entry = data[offset + 72 * k: offset + 72 * (k + 1)]
        name = entry[:64].split(b"\0")[0].decode("latin-1")
        flags = struct.unpack("<i", entry[64:68])[0]
        if flags & (SURF_SKY | SURF_NODRAW) or not name.startswith("textures/") or name.startswith("textures/common/"):
            continue
        image = images.get(name.lower())
        if image is not None:
            surfaces.append(Surface(name, image))
    if not surfaces:
        raise InputError(f"map {map_name!r} has no texture the overrides can break")
    return surfaces


def pick_surfaces(surfaces: list[Surface], rng: np.random.Generator, share: float = 0.4) -> list[Surface]:
    """A seeded subset of a map's surfaces (at least one) for a texture override."""
    count = max(1, int(round(share * len(surfaces))))
    chosen = rng.choice(len(surfaces), size=count, replace=False)
    return [surfaces[int(i)] for i in sorted(chosen)]


def missing_texture_shaders(surfaces: list[Surface]) -> str:
    """Shader scripts that point each surface at an image the game does not have."""
    return "".join(
        f"{s.shader}\n{{\n\t{{\n\t\tmap textures/bugdet_missing/{k}.tga\n\t}}\n"
        f"\t{{\n\t\tmap $lightmap\n\t\tblendFunc GL_DST_COLOR GL_ZERO\n\t}}\n}}\n"
        for k, s in enumerate(surfaces)
    )


def stretched_texture_shaders(surfaces: list[Surface], scale: float) -> str:
    """Shader scripts that draw each surface's own image magnified by ``1/scale`` (lightmap kept)."""
    return "".join(
        f"{s.shader}\n{{\n\t{{\n\t\tmap {s.image}\n\t\ttcMod scale {scale:.3f} {scale:.3f}\n\t}}\n"
        f"\t{{\n\t\tmap $lightmap\n\t\tblendFunc GL_DST_COLOR GL_ZERO\n\t}}\n}}\n"
        for s in surfaces
    )


def write_override_pk3(home: Path, shader_text: str) -> Path:
    """Writes ``zzz_bugdet.pk3`` (loads after the game's pk3s) into a run's homepath."""
    path = Path(home) / "baseoa" / "zzz_bugdet.pk3"
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("scripts/zzz_bugdet.shader", shader_text)
    return path
