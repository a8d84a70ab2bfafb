"""What the installed game data holds: maps, the textures a map uses, and override pk3s.

The texture bugs are made the way a broken build makes them: a pk3 in the run's homepath (the
highest-priority place) redefines some of the map's surfaces with shader scripts
(:func:`override_scripts` explains how a redefinition wins over the game's). The *missing texture* override points a surface at an image that does not exist,
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
BSP_SURFACE_LUMP = 13  # lump of draw surfaces (104 bytes each, shader index first)
SURF_SKY, SURF_NODRAW = 0x4, 0x80
IMAGE_EXTS = (".tga", ".jpg", ".png")


def pk3_files(basepath: Path) -> list[Path]:
    """The game's pk3s, in load order (later ones override earlier ones)."""
    return sorted((Path(basepath) / "baseoa").glob("*.pk3"))


@dataclass(frozen=True)
class Surface:
    shader: str  # shader / texture name as the BSP names it, e.g. textures/gothic_wall/proto_brik
    image: str  # the image file in the game data the name falls back to
    faces: int  # how many of the map's draw surfaces use it


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


def _lump(data: bytes, index: int) -> tuple[int, int]:
    return struct.unpack("<ii", data[8 + 8 * index: 16 + 8 * index])


def map_surfaces(basepath: Path, map_name: str) -> list[Surface]:
    """The map's drawn textures whose look comes from one image file (sky, hidden and tool
    surfaces, and textures no surface uses, left out): the ones an override can visibly break."""
    data = _read_bsp(basepath, map_name)
    if data[:4] != b"IBSP":
        raise InputError(f"maps/{map_name}.bsp is not a Quake 3 BSP")
    offset, length = _lump(data, BSP_SHADER_LUMP)
    surf_offset, surf_length = _lump(data, BSP_SURFACE_LUMP)
    faces = np.bincount(
        np.frombuffer(data, "<i4", surf_length // 4, surf_offset).reshape(-1, 26)[:, 0], minlength=length // 72)
    images = _image_index(str(basepath))
    surfaces = []
    for k in range(length // 72):
        entry = data[offset + 72 * k: offset + 72 * (k + 1)]
        name = entry[:64].split(b"\0")[0].decode("latin-1")
        flags = struct.unpack("<i", entry[64:68])[0]
        if flags & (SURF_SKY | SURF_NODRAW) or not name.startswith("textures/") or name.startswith("textures/common/"):
            continue
        image = images.get(name.lower())
        if image is not None and faces[k] > 0:
            surfaces.append(Surface(name, image, int(faces[k])))
    if not surfaces:
        raise InputError(f"map {map_name!r} has no texture the overrides can break")
    return surfaces


def pick_surfaces(surfaces: list[Surface], rng: np.random.Generator, share: float = 0.25) -> list[Surface]:
    """A seeded subset of a map's textures (at least one) for a texture override, drawn in
    proportion to how many surfaces use each, so the broken ones are the ones on screen."""
    count = max(1, int(round(share * len(surfaces))))
    weights = np.array([s.faces for s in surfaces], float)
    chosen = rng.choice(len(surfaces), size=count, replace=False, p=weights / weights.sum())
    return [surfaces[int(i)] for i in sorted(chosen)]


def missing_texture_shaders(surfaces: list[Surface]) -> dict[str, str]:
    """Shader definitions (name -> script block) pointing each surface at an image the game does
    not have."""
    return {
        s.shader: f"{s.shader}\n{{\n\t{{\n\t\tmap textures/bugdet_missing/{k}.tga\n\t}}\n"
                  f"\t{{\n\t\tmap $lightmap\n\t\tblendFunc GL_DST_COLOR GL_ZERO\n\t}}\n}}"
        for k, s in enumerate(surfaces)
    }


def stretched_texture_shaders(surfaces: list[Surface], scale: float) -> dict[str, str]:
    """Shader definitions drawing each surface's own image magnified by ``1/scale``, lightmapped."""
    return {
        s.shader: f"{s.shader}\n{{\n\t{{\n\t\tmap {s.image}\n\t\ttcMod scale {scale:.3f} {scale:.3f}\n\t}}\n"
                  f"\t{{\n\t\tmap $lightmap\n\t\tblendFunc GL_DST_COLOR GL_ZERO\n\t}}\n}}"
        for s in surfaces
    }


@lru_cache(maxsize=4)
def _script_files(basepath: str) -> dict[str, str]:
    """Shader script path -> the text of the version the game loads (a later pk3 replaces a
    same-named script of an earlier one)."""
    files: dict[str, str] = {}
    for pk3 in pk3_files(Path(basepath)):
        with zipfile.ZipFile(pk3) as z:
            for name in z.namelist():
                if name.startswith("scripts/") and name.lower().endswith(".shader"):
                    files[name] = z.read(name).decode("latin-1")
    return files


def shader_blocks(text: str) -> list[tuple[str, int, int]]:
    """(name, start, end) of every top-level definition in a shader script, comments skipped."""
    blocks: list[tuple[str, int, int]] = []
    depth, i, n = 0, 0, len(text)
    name, name_start, start = "", 0, 0
    while i < n:
        if text.startswith("//", i):
            i = text.find("\n", i)
            i = n if i < 0 else i
            continue
        if text.startswith("/*", i):
            i = text.find("*/", i)
            i = n if i < 0 else i + 2
            continue
        c = text[i]
        if c == "{":
            if depth == 0:
                start = name_start
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                blocks.append((name, start, i + 1))
            depth = max(depth, 0)
        elif depth == 0 and not c.isspace():
            j = i
            while j < n and not text[j].isspace() and text[j] not in "{}":
                j += 1
            name, name_start = text[i:j], i
            i = j
            continue
        i += 1
    return blocks


def override_scripts(basepath: Path, definitions: dict[str, str]) -> dict[str, str]:
    """The shader scripts a pk3 must hold so ``definitions`` win over the game's own.

    ioquake3 takes the first definition of a name in its shader text, and a high-priority pk3's
    scripts end up *after* the game's there, so adding a new script is not enough for a shader
    the game defines. A script with the same path as the game's replaces that file, though: each
    game script that defines one of the names is shipped whole with those definitions swapped;
    names the game does not define go into ``scripts/zzz_bugdet.shader``.
    """
    wanted = {name.lower(): block for name, block in definitions.items()}
    placed: set[str] = set()
    files: dict[str, str] = {}
    for path, text in _script_files(str(basepath)).items():
        hits = [(name.lower(), a, b) for name, a, b in shader_blocks(text) if name.lower() in wanted]
        if not hits:
            continue
        for name, a, b in reversed(hits):
            text = text[:a] + wanted[name] + text[b:]
            placed.add(name)
        files[path] = text
    rest = [block for name, block in wanted.items() if name not in placed]
    if rest:
        files["scripts/zzz_bugdet.shader"] = "\n".join(rest) + "\n"
    return files


def write_override_pk3(home: Path, scripts: dict[str, str]) -> Path:
    """Writes ``zzz_bugdet.pk3`` with ``scripts`` (path -> text) into a run's homepath, where it
    has the highest priority of all pk3s."""
    path = Path(home) / "baseoa" / "zzz_bugdet.pk3"
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as z:
        for name, text in sorted(scripts.items()):
            z.writestr(name, text.encode("latin-1"))
    return path
