"""Posters on walls, the surfaces the z-fighting bug acts on.

A correct poster sits 2 cm in front of its wall. The bug variant is the poster made coplanar
with the wall; the software renderer resolves exact ties consistently (the wall wins everywhere),
so the stripes a GPU would produce from depth-precision noise are reproduced explicitly: the
fighting variants draw the poster only in irregular bands, and the band pattern changes from
frame to frame, which is the flicker testers report.
"""

from __future__ import annotations

import numpy as np
from panda3d.core import NodePath

from bugdet.playtest import props, textures as tx
from bugdet.playtest.world import Poster, World

FIGHT_PHASES = 4


def _bands(rng: np.random.Generator) -> list[tuple[float, float]]:
    """Irregular horizontal strips covering roughly half of the poster."""
    edges = np.sort(rng.uniform(0, 1, size=int(rng.integers(10, 18))))
    edges = np.concatenate([[0.0], edges, [1.0]])
    return [(float(a), float(b)) for k, (a, b) in enumerate(zip(edges[:-1], edges[1:])) if k % 2 == 0]


def add_poster(world: World, rng: np.random.Generator, parent: NodePath, local: tuple[float, float, float],
               width: float, height: float) -> Poster:
    """Put a poster on ``parent``'s local -y face at ``local`` (x along the wall, z = bottom edge)."""
    index = len(world.posters)
    name = f"poster_{index}"
    world.textures.add(name, tx.poster(rng))
    anchor = parent.attachNewNode("poster_anchor")
    anchor.setPos(local[0], local[1], local[2])
    pos = anchor.getPos(world.root)
    heading = anchor.getH(world.root)
    anchor.removeNode()
    obj = world.add("poster", "decal", [], (pos[0], pos[1], pos[2]), heading)
    texture = world.textures.get(name)
    correct = obj.node.attachNewNode(props.poster_quad(width, height))
    correct.setY(-0.02)
    correct.setTexture(texture, 1)
    fighting = []
    for _ in range(FIGHT_PHASES):
        variant = obj.node.attachNewNode(props.poster_quad(width, height, _bands(rng)))
        variant.setY(-0.004)
        variant.setTexture(texture, 1)
        variant.hide()
        fighting.append(variant)
    obj.material = name
    center = (pos[0], pos[1], pos[2] + height / 2)
    poster = Poster(oid=obj.oid, correct=correct, fighting=fighting, center=center, facing_heading=heading)
    world.posters.append(poster)
    return poster
