"""Scene layouts named after the OpenLORIS-Scene scenes, built from a few furniture primitives.

- ``home`` (8 x 6 m): living room with sofa, carpet, TV and bookshelf; a partition wall; kitchen and dining table.
- ``office`` (10 x 7 m): rows of desks with monitors and chairs, two pillars, cabinets, a whiteboard.
- ``corridor`` (22 x 2.6 m): long and narrow, doors on both sides, benches, notice boards, bins.
- ``cafe`` (12 x 9 m): counter with menu boards, small tables with chairs, pillars, plants.
- ``market`` (20 x 14 m, 3.5 m high): rows of product shelves, checkouts, freezers, a grid of pillars.

The ``Challenges`` switches change the layouts: ``repetitive`` picks a tiled floor, a carpet, identical
pillars and identical doors (otherwise varied ones); ``featureless`` paints some walls one flat colour and takes
their posters away (otherwise plaster with posters). Movable furniture (chairs, small tables, boxes, plants) is
flagged ``movable``; ``rapnet_loc.synth.layout`` moves it between sequences.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from rapnet_loc.errors import ConfigError
from rapnet_loc.synth.challenges import Challenges
from rapnet_loc.synth.world import Light, Part, Room, SceneSpec, Thing

WALL_YAW = (np.pi / 2, np.pi, -np.pi / 2, 0.0)    # facing into the room from walls 0 (y=0), 1 (x=L), 2 (y=W), 3 (x=0)


class _Builder:
    """Collects the objects and lights of one scene; helpers place common furniture."""

    def __init__(self, name: str, challenges: Challenges, size: tuple[float, float, float],
                 floor: tuple[str, float], wall: tuple[str, float | None], plain: tuple[int, ...], paint: str):
        """Room of ``size`` (length, width, height); walls ``wall`` except ``plain`` ones painted ``paint``
        (flat, without posters) when ``challenges.featureless``."""
        self.name = name
        self.ch = challenges
        self.plain = plain if challenges.featureless else ()
        walls = tuple((f'paint_{paint}', None) if w in self.plain else wall for w in range(4))
        self.room = Room(*size, floor, ('ceiling', 1.2), walls)
        self.things: list[Thing] = []
        self.lights: list[Light] = []
        self._count: dict[str, int] = {}

    def spec(self, ambient: float = 0.35) -> SceneSpec:
        return SceneSpec(self.name, self.room, tuple(self.things), tuple(self.lights), ambient)

    def add(self, kind: str, x: float, y: float, yaw: float, parts: list[Part], movable: bool = False,
            obstacle: bool = True) -> None:
        n = self._count[kind] = self._count.get(kind, 0) + 1
        self.things.append(Thing(f'{kind}_{n}', x, y, yaw, tuple(parts), movable, obstacle))

    def wall_point(self, wall: int, along: float, inset: float = 0.0) -> tuple[float, float, float]:
        """(x, y, yaw) of a point on wall ``wall`` at coordinate ``along`` (x on walls 0/2, y on 1/3), facing in."""
        length, width = self.room.length, self.room.width
        x, y = [(along, inset), (length - inset, along), (along, width - inset), (inset, along)][wall]
        return x, y, WALL_YAW[wall]

    # -- decorations (not obstacles) ------------------------------------------------------------------------
    def poster(self, wall: int, along: float, z: float, width: float, height: float, texture: str) -> None:
        self.add('poster', *self.wall_point(wall, along),
                 [Part((0.01, 0.0, z), (0.02, width, height), 'paint_white', front=texture)], obstacle=False)

    def door(self, wall: int, along: float, texture: str) -> None:
        self.add('door', *self.wall_point(wall, along),
                 [Part((0.02, 0.0, 1.05), (0.04, 1.0, 2.1), 'wood_dark', front=texture)], obstacle=False)

    def carpet(self, x: float, y: float, yaw: float, length: float, width: float) -> None:
        self.add('carpet', x, y, yaw, [Part((0, 0, 0.005), (length, width, 0.01), 'carpet', tile_m=0.5)],
                 obstacle=False)

    def lamp(self, x: float, y: float) -> None:
        h = self.room.height
        self.add('lamp', x, y, 0.0, [Part((0, 0, h - 0.04), (0.6, 0.6, 0.08), 'paint_white')], obstacle=False)
        self.lights.append(Light((x, y, h - 0.2)))

    # -- furniture ------------------------------------------------------------------------------------------
    def box(self, kind: str, x: float, y: float, yaw: float, size: tuple[float, float, float], texture: str,
            tile_m=None, front: str | None = None, movable: bool = False) -> None:
        self.add(kind, x, y, yaw, [Part((0, 0, size[2] / 2), size, texture, tile_m, front)], movable)

    def table(self, x: float, y: float, yaw: float, length: float = 1.2, width: float = 0.8, height: float = 0.75,
              top: str = 'wood', movable: bool = True, kind: str = 'table') -> None:
        legs = [Part((sx * (length / 2 - 0.05), sy * (width / 2 - 0.05), (height - 0.04) / 2),
                     (0.05, 0.05, height - 0.04), 'metal') for sx in (-1, 1) for sy in (-1, 1)]
        self.add(kind, x, y, yaw, [Part((0, 0, height - 0.02), (length, width, 0.04), top, tile_m=1.0), *legs],
                 movable)

    def chair(self, x: float, y: float, yaw: float, fabric: int) -> None:
        """A chair whose seat faces +x of its frame (rotate ``yaw`` to face a table)."""
        cloth = f'fabric_{fabric % 6}'
        legs = [Part((sx * 0.19, sy * 0.19, 0.215), (0.04, 0.04, 0.43), 'metal') for sx in (-1, 1) for sy in (-1, 1)]
        self.add('chair', x, y, yaw, [Part((0, 0, 0.45), (0.45, 0.45, 0.05), cloth),
                                      Part((-0.2, 0, 0.72), (0.05, 0.45, 0.5), cloth), *legs], movable=True)

    def sofa(self, x: float, y: float, yaw: float, length: float, fabric: int) -> None:
        cloth = f'fabric_{fabric % 6}'
        self.add('sofa', x, y, yaw, [
            Part((0.05, 0, 0.22), (0.8, length - 0.3, 0.44), cloth, tile_m=0.5),
            Part((-0.3, 0, 0.6), (0.2, length, 0.5), cloth, tile_m=0.5),
            Part((0.05, length / 2 - 0.075, 0.32), (0.8, 0.15, 0.64), cloth, tile_m=0.5),
            Part((0.05, -length / 2 + 0.075, 0.32), (0.8, 0.15, 0.64), cloth, tile_m=0.5)])

    def shelf(self, x: float, y: float, yaw: float, length: float, depth: float, height: float, fill: str,
              levels: int, frame: str = 'wood') -> None:
        """Open shelf facing +x of its frame: back, sides, boards and one strip of ``fill`` per level."""
        step = height / levels
        parts = [Part((-depth / 2 + 0.01, 0, height / 2), (0.02, length, height), frame, tile_m=1.0),
                 Part((0, length / 2 - 0.01, height / 2), (depth, 0.02, height), frame, tile_m=1.0),
                 Part((0, -length / 2 + 0.01, height / 2), (depth, 0.02, height), frame, tile_m=1.0)]
        for k in range(levels):
            parts.append(Part((0, 0, k * step + 0.015), (depth, length - 0.04, 0.03), frame, tile_m=1.0))
            parts.append(Part((-0.02, 0, k * step + 0.03 + 0.4 * step), (depth - 0.08, length - 0.06, 0.8 * step),
                              fill, tile_m=(1.5, 0.8 * step)))
        parts.append(Part((0, 0, height - 0.015), (depth, length, 0.03), frame, tile_m=1.0))
        self.add('shelf', x, y, yaw, parts)

    def gondola(self, x: float, y: float, length: float, levels: int = 4, height: float = 1.7) -> None:
        """Double-sided supermarket shelf along x: a metal core and one row of products per level, facing both
        long sides."""
        step = height / levels
        parts = [Part((0, 0, height / 2), (length, 0.3, height), 'metal', tile_m=1.0)]
        for k in range(levels):
            parts.append(Part((0, 0, k * step + 0.02 + 0.4 * step), (length - 0.02, 0.8, 0.8 * step),
                              'products', tile_m=(2.0, 0.8 * step)))
        self.add('gondola', x, y, 0.0, parts)

    def pillar(self, x: float, y: float, size: float, k: int) -> None:
        texture = 'pillar_0' if self.ch.repetitive else f'pillar_{k % 4}'
        self.box('pillar', x, y, 0.0, (size, size, self.room.height), texture, tile_m=(size, 2.0))

    def plant(self, x: float, y: float) -> None:
        self.add('plant', x, y, 0.0, [Part((0, 0, 0.2), (0.35, 0.35, 0.4), 'wood_dark'),
                                      Part((0, 0, 0.8), (0.55, 0.55, 0.8), 'grass', tile_m=0.5)], movable=True)

    def desk(self, x: float, y: float, yaw: float, fabric: int) -> None:
        """Desk (facing +x) with a monitor and a chair in front of it."""
        self.table(x, y, yaw, 1.4, 0.7, 0.74, top='wood', movable=False, kind='desk')
        c, s = np.cos(yaw), np.sin(yaw)
        self.add('monitor', x - 0.2 * c, y - 0.2 * s, yaw,
                 [Part((0, 0, 0.76), (0.2, 0.25, 0.02), 'metal'), Part((0, 0, 0.9), (0.04, 0.08, 0.28), 'metal'),
                  Part((0, 0, 1.1), (0.04, 0.6, 0.36), 'metal', front='screen')], obstacle=False)
        self.chair(x + 0.65 * c, y + 0.65 * s, yaw + np.pi, fabric)

    def cardboard(self, x: float, y: float, yaw: float, size: tuple[float, float, float]) -> None:
        self.box('box', x, y, yaw, size, 'cardboard', movable=True)

    def decorate(self, wall: int, along: float, z: float, width: float, height: float, texture: str) -> None:
        """A poster, unless ``wall`` is a featureless wall."""
        if wall not in self.plain:
            self.poster(wall, along, z, width, height, texture)


def _floor(ch: Challenges, tiled: tuple[str, float], varied: tuple[str, float]) -> tuple[str, float]:
    return tiled if ch.repetitive else varied


def _home(ch: Challenges) -> SceneSpec:
    b = _Builder('home', ch, (8.0, 6.0, 2.6), _floor(ch, ('tiles', 1.0), ('wood', 2.0)), ('plaster', 2.0), (1, 2),
                 'cream')
    b.box('partition', 5.0, 1.6, 0.0, (0.12, 3.2, 2.6), 'plaster', tile_m=2.0)
    b.sofa(0.55, 3.0, 0.0, 2.0, 0)
    if ch.repetitive:
        b.carpet(2.0, 3.0, 0.0, 2.0, 2.4)
    b.table(2.1, 3.0, 0.0, 1.0, 0.6, 0.42, top='wood_dark')
    b.box('tv_stand', 4.7, 2.0, np.pi, (0.45, 1.6, 0.5), 'wood_dark', tile_m=0.8)
    b.add('tv', 4.72, 2.0, np.pi, [Part((0, 0, 0.92), (0.06, 1.2, 0.7), 'metal', front='screen')], obstacle=False)
    b.shelf(2.3, 0.2, np.pi / 2, 1.6, 0.36, 2.0, 'books', 5)
    b.box('armchair', 0.7, 0.9, np.pi / 4, (0.8, 0.8, 0.8), 'fabric_2', tile_m=0.5, movable=True)
    b.plant(0.45, 5.5)
    b.table(6.6, 4.4, 0.0, 1.4, 0.9, 0.75)
    for dx, dy, yaw in ((-0.35, -0.75, np.pi / 2), (0.35, -0.75, np.pi / 2), (-0.35, 0.75, -np.pi / 2),
                        (0.35, 0.75, -np.pi / 2)):
        b.chair(6.6 + dx, 4.4 + dy, yaw, 3)
    b.box('counter', 7.7, 1.7, np.pi, (0.6, 2.8, 0.9), 'wood', tile_m=1.0)
    b.add('upper_cabinet', 7.82, 1.7, np.pi, [Part((0, 0, 1.85), (0.35, 2.8, 0.7), 'wood', tile_m=1.0)],
          obstacle=False)
    b.box('fridge', 5.45, 0.4, np.pi / 2, (0.7, 0.7, 1.85), 'metal', tile_m=1.0)
    b.cardboard(3.2, 5.6, 0.1, (0.5, 0.4, 0.45))
    b.cardboard(2.6, 5.65, -0.2, (0.4, 0.35, 0.35))
    b.door(0, 4.0, 'door_0')
    b.door(2, 3.0, 'door_0' if ch.repetitive else 'door_1')
    b.door(1, 5.3, 'door_0' if ch.repetitive else 'door_2')
    b.decorate(2, 1.3, 1.55, 0.8, 0.9, 'poster_astronaut')
    b.decorate(3, 1.2, 1.6, 0.7, 0.6, 'poster_chelsea')
    b.decorate(0, 6.7, 1.6, 0.6, 0.5, 'poster_coffee')
    b.decorate(1, 4.4, 1.6, 0.9, 0.6, 'poster_rocket')
    for x, y in ((2.0, 3.0), (6.6, 4.4), (6.5, 1.5)):
        b.lamp(x, y)
    return b.spec()


def _office(ch: Challenges) -> SceneSpec:
    b = _Builder('office', ch, (10.0, 7.0, 2.8), _floor(ch, ('carpet', 0.5), ('concrete', 2.0)), ('plaster', 2.0),
                 (0, 1), 'white')
    k = 0
    for x in (2.0, 3.6, 7.0, 8.6):
        for y in (2.2, 4.8):
            b.desk(x, y, np.pi, k)
            k += 1
    b.pillar(5.3, 2.2, 0.5, 0)
    b.pillar(5.3, 4.8, 0.5, 1)
    for x in (1.0, 2.0, 3.0):
        b.box('cabinet', x, 0.3, np.pi / 2, (0.5, 0.9, 1.1), 'metal', tile_m=1.0)
    b.shelf(8.0, 6.75, -np.pi / 2, 2.0, 0.4, 1.9, 'books', 5, frame='metal')
    b.add('whiteboard', *b.wall_point(3, 3.5), [Part((0.01, 0, 1.5), (0.02, 1.8, 1.1), 'metal', front='whiteboard')],
          obstacle=False)
    b.plant(9.6, 0.4)
    b.plant(0.4, 6.6)
    b.cardboard(6.3, 0.4, 0.0, (0.6, 0.4, 0.4))
    b.door(1, 1.2, 'door_1')
    b.door(2, 2.0, 'door_1' if ch.repetitive else 'door_3')
    b.decorate(2, 4.5, 1.6, 0.8, 0.6, 'poster_hubble')
    b.decorate(0, 5.0, 1.6, 0.9, 0.7, 'poster_camera')
    b.decorate(1, 4.5, 1.6, 0.7, 0.9, 'poster_page')
    b.decorate(0, 8.5, 1.6, 0.8, 0.6, 'poster_rocket')
    for x in (2.5, 5.0, 7.5):
        for y in (2.0, 5.0):
            b.lamp(x, y)
    return b.spec()


def _corridor(ch: Challenges) -> SceneSpec:
    b = _Builder('corridor', ch, (22.0, 2.6, 2.7), _floor(ch, ('tiles', 0.8), ('concrete', 2.0)), ('plaster', 2.0),
                 (0, 2), 'white')
    for i, x in enumerate(np.arange(2.0, 21.0, 3.0)):
        wall = 0 if i % 2 == 0 else 2
        b.door(wall, float(x), 'door_0' if ch.repetitive else f'door_{i % 4}')
        b.door(2 - wall, float(x) + 1.5, 'door_0' if ch.repetitive else f'door_{(i + 2) % 4}')
    posters = ('poster_page', 'poster_text', 'poster_camera', 'poster_coffee')
    for i, x in enumerate((3.2, 9.2, 15.2)):
        b.decorate(2 * (i % 2), x, 1.5, 0.8, 0.6, posters[i])
    b.poster(1, 1.3, 1.5, 1.0, 0.8, 'poster_astronaut')
    b.poster(3, 1.3, 1.5, 1.0, 0.8, 'poster_hubble')
    for x, wall in ((5.0, 0), (12.5, 2), (18.0, 0)):
        px, py, yaw = b.wall_point(wall, x, 0.22)
        b.add('bench', px, py, yaw, [Part((0, 0, 0.42), (0.4, 1.2, 0.06), 'wood', tile_m=1.0),
                                     Part((0, 0.5, 0.2), (0.35, 0.06, 0.4), 'metal'),
                                     Part((0, -0.5, 0.2), (0.35, 0.06, 0.4), 'metal')], movable=True)
    for x, wall in ((7.8, 2), (14.0, 0)):
        px, py, yaw = b.wall_point(wall, x, 0.2)
        b.box('bin', px, py, yaw, (0.35, 0.35, 0.7), 'fabric_3', movable=True)
    px, py, yaw = b.wall_point(2, 10.5, 0.1)
    b.box('extinguisher', px, py, yaw, (0.18, 0.5, 0.9), 'fabric_1')
    for x in np.arange(1.5, 22.0, 4.0):
        b.lamp(float(x), 1.3)
    return b.spec(ambient=0.3)


def _cafe(ch: Challenges) -> SceneSpec:
    b = _Builder('cafe', ch, (12.0, 9.0, 3.0), _floor(ch, ('tiles', 0.6), ('wood', 2.0)), ('brick', 1.2), (1,),
                 'beige')
    b.box('counter', 6.0, 8.3, -np.pi / 2, (0.7, 5.0, 1.05), 'wood_dark', tile_m=1.0)
    b.add('menu', *b.wall_point(2, 6.0), [Part((0.01, -1.2, 2.0), (0.02, 1.4, 0.8), 'metal', front='poster_text'),
                                          Part((0.01, 1.2, 2.0), (0.02, 1.4, 0.8), 'metal', front='poster_coffee')],
          obstacle=False)
    k = 0
    for x in (2.2, 4.7, 7.3, 9.8):
        for y in (2.0, 5.0):
            b.table(x, y, 0.0, 0.75, 0.75, 0.74, top='wood_dark')
            b.chair(x - 0.65, y, 0.0, k)
            b.chair(x + 0.65, y, np.pi, k + 1)
            k += 2
    b.pillar(6.0, 3.5, 0.45, 0)
    b.pillar(3.45, 3.5, 0.45, 1)
    b.pillar(8.55, 3.5, 0.45, 2)
    for x, y in ((0.4, 8.6), (11.6, 8.6), (11.6, 0.4), (0.4, 0.4)):
        b.plant(x, y)
    b.shelf(1.5, 8.8, -np.pi / 2, 1.6, 0.35, 1.8, 'products', 4)
    b.door(0, 6.0, 'door_3')
    b.decorate(0, 2.5, 1.6, 0.9, 0.7, 'poster_coffee')
    b.decorate(3, 4.5, 1.6, 0.9, 0.9, 'poster_chelsea')
    b.decorate(1, 4.5, 1.6, 0.9, 0.7, 'poster_astronaut')
    b.decorate(0, 9.5, 1.6, 0.9, 0.7, 'poster_hubble')
    for x in (2.2, 4.7, 7.3, 9.8):
        for y in (2.0, 5.0):
            b.lamp(x, y)
    return b.spec(ambient=0.3)


def _market(ch: Challenges) -> SceneSpec:
    b = _Builder('market', ch, (20.0, 14.0, 3.5), _floor(ch, ('tiles', 0.8), ('concrete', 2.0)), ('plaster', 2.0),
                 (3,), 'grey')
    for y in (3.8, 6.8, 9.8):
        for x0, x1 in ((3.0, 8.6), (11.0, 16.6)):
            b.gondola((x0 + x1) / 2, y, x1 - x0)
    for x in np.arange(2.5, 18.0, 3.0):
        b.shelf(float(x), 13.65, -np.pi / 2, 2.8, 0.6, 2.0, 'products', 5, frame='metal')
    for x in (4.0, 7.0, 10.0):
        b.box('checkout', x, 1.5, 0.0, (1.8, 0.6, 0.9), 'metal', tile_m=1.0)
    for y in (4.5, 8.0):
        b.box('freezer', 19.5, y, np.pi, (0.9, 2.4, 0.9), 'paint_white')
    for k, (x, y) in enumerate(((9.8, 5.3), (9.8, 8.3), (2.0, 8.3), (17.8, 5.3), (17.8, 11.5), (2.0, 11.5))):
        b.pillar(x, y, 0.5, k)
    b.cardboard(14.0, 1.2, 0.3, (0.6, 0.5, 0.5))
    b.cardboard(14.6, 1.0, -0.2, (0.5, 0.4, 0.4))
    b.cardboard(13.0, 11.2, 0.0, (0.6, 0.6, 0.6))
    b.door(0, 15.5, 'door_3')
    b.decorate(0, 8.5, 2.4, 2.0, 1.2, 'poster_coffee')
    b.decorate(1, 11.0, 2.4, 1.5, 1.5, 'poster_chelsea')
    b.decorate(3, 6.0, 2.4, 2.0, 1.4, 'poster_astronaut')
    b.decorate(0, 2.0, 2.4, 1.6, 1.2, 'poster_rocket')
    for x in (3.5, 8.5, 13.5, 18.0):
        for y in (4.0, 10.0):
            b.lamp(x, y)
    return b.spec(ambient=0.3)


SCENES: dict[str, Callable[[Challenges], SceneSpec]] = {
    'home': _home, 'office': _office, 'corridor': _corridor, 'cafe': _cafe, 'market': _market}


def scene_spec(name: str, challenges: Challenges) -> SceneSpec:
    """Layout of scene ``name`` (one of ``SCENES``) under ``challenges``; ConfigError for an unknown name."""
    if name not in SCENES:
        raise ConfigError(f'unknown synthetic scene {name!r}; choose one of: {", ".join(SCENES)}')
    return SCENES[name](challenges)
