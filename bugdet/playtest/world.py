"""The world a scene builder produces: scene graph, object registry, collision, bug hooks.

Scene builders (park, indoor) fill a :class:`World`; the renderer draws ``root``, the player
collides with ``colliders``, ground truth reads ``objects`` (ID -> name/category) and the bug
injectors find their targets in ``texture_targets``, ``posters`` and ``floatables``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable

from panda3d.core import GeomNode, NodePath, Texture, TextureStage

from bugdet.playtest.collision import Collider
from bugdet.playtest.nav import NavGrid
from bugdet.playtest.textures import TextureLibrary

#: object ID 0 is the sky / background in every ID map
SKY_ID = 0
#: the viewmodel's ID; world objects are numbered from 1 and never reach it
WEAPON_ID = 65000


@dataclass
class WorldObject:
    oid: int
    name: str
    category: str
    node: NodePath
    material: str | None = None  # texture name, for the texture bugs


@dataclass
class Poster:
    """A decal on a wall: ``correct`` sits 2 cm proud of the wall, ``fighting`` variants are the bug."""

    oid: int
    correct: NodePath
    fighting: list[NodePath]
    center: tuple[float, float, float]
    facing_heading: float  # heading a viewer looks along to face the poster


@dataclass
class Environment:
    """Lighting and sky of one time of day, applied by the renderer."""

    name: str
    sun_hpr: tuple[float, float, float]
    sun_color: tuple[float, float, float]
    ambient_color: tuple[float, float, float]
    sky_top: tuple[float, float, float]
    sky_horizon: tuple[float, float, float]
    viewmodel_tint: tuple[float, float, float]
    haze: float = 0.0  # strength of distance fog at the far end (0 = none)


@dataclass
class World:
    scene: str
    variant: str
    root: NodePath
    textures: TextureLibrary
    environment: Environment
    height: Callable[[float, float], float]
    bounds: tuple[float, float, float, float]
    objects: dict[int, WorldObject] = field(default_factory=dict)
    colliders: list[Collider] = field(default_factory=list)
    texture_targets: list[int] = field(default_factory=list)
    posters: list[Poster] = field(default_factory=list)
    floatables: list[int] = field(default_factory=list)
    spawn: tuple[float, float] = (0.0, 0.0)
    sky: NodePath | None = None
    nav: NavGrid | None = None  # walkable cells reachable from the spawn, set by load_world

    def add(
        self, name: str, category: str, parts: list[tuple[GeomNode, str | None]],
        pos: tuple[float, float, float] = (0.0, 0.0, 0.0), heading: float = 0.0,
        colliders: list[Collider] | None = None, texture_target: bool = False, floatable: bool = False,
    ) -> WorldObject:
        """Register an object: give it the next ID, tag it for the ID pass, texture its parts.

        Materials live on the parts (children), so a texture bug can override them all from the
        object node with a higher priority and restore them by clearing that override.
        """
        oid = len(self.objects) + 1
        node = self.root.attachNewNode(f"{name}_{oid}")
        node.setPos(*pos)
        node.setH(heading)
        node.setTag("oid", str(oid))
        main_material = None
        for geom, material in parts:
            part = node.attachNewNode(geom)
            if material is not None:
                part.setTexture(self.textures.get(material), 1)
                main_material = main_material or material
            else:
                part.setTextureOff(1)
        obj = WorldObject(oid=oid, name=f"{name}_{oid}", category=category, node=node, material=main_material)
        self.objects[oid] = obj
        for c in colliders or []:
            self.colliders.append(replace(c, oid=oid))
        if texture_target:
            self.texture_targets.append(oid)
        if floatable:
            self.floatables.append(oid)
        return obj

    def object_table(self) -> dict[str, dict[str, str]]:
        """``SessionInfo.objects``: every ID an ID map can contain, with name and category."""
        table = {str(SKY_ID): {"name": "sky", "category": "sky"}}
        for oid in sorted(self.objects):
            obj = self.objects[oid]
            table[str(oid)] = {"name": obj.name, "category": obj.category}
        table[str(WEAPON_ID)] = {"name": "viewmodel", "category": "weapon"}
        return table

    def set_texture(self, oid: int, texture: Texture, scale: tuple[float, float] = (1.0, 1.0)) -> None:
        """Override an object's textures (texture bugs) and their UV scale (stretched texture)."""
        node = self.objects[oid].node
        node.setTexture(texture, 10)
        if scale != (1.0, 1.0):
            node.setTexScale(TextureStage.getDefault(), scale[0], scale[1])

    def restore_texture(self, oid: int) -> None:
        node = self.objects[oid].node
        node.clearTexture()
        node.clearTexTransform()
