"""World geometry of a synthetic scene: textured quads, boxes, objects, lights, labels and free space.

Frames: the world frame (``gt_map``) has z up and the floor at z = 0; a room spans ``[0, length] x [0, width]``.
Objects (``Thing``) are groups of boxes in their own frame (x forward, y left, z up, origin on the floor), placed
by ``(x, y, yaw)``.

Labels: every pixel of a rendered label map holds ``object id | DYNAMIC flag`` as uint8: ``ID_MASK`` (0x7F)
selects the id (1..127; 0 means "no surface", never seen inside a closed room) and ``DYNAMIC`` (0x80) marks
objects that move during a sequence (people). Whether furniture may stand elsewhere in another sequence is in the
label table (``LabelInfo.movable``).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import cv2
import numpy as np
from scipy import ndimage

from rapnet_loc.synth.textures import TextureBank

DYNAMIC = 0x80
ID_MASK = 0x7F


def yaw_matrix(x: float, y: float, yaw: float, z: float = 0.0) -> np.ndarray:
    """(4, 4) pose of a frame at (x, y, z) rotated by ``yaw`` about +z."""
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([[c, -s, 0.0, x], [s, c, 0.0, y], [0.0, 0.0, 1.0, z], [0.0, 0.0, 0.0, 1.0]])


@dataclass
class QuadSet:
    """N textured parallelogram quads (structure of arrays).

    Corners are ``origin``, ``origin + edge_u``, ``origin + edge_u + edge_v``, ``origin + edge_v``. The texture
    runs along ``edge_u`` (columns) and ``edge_v`` (rows) and repeats ``repeats`` times along each. A quad is
    seen only from the side of ``cross(edge_v, edge_u)`` (its normal): with ``edge_u`` pointing right and
    ``edge_v`` down as the viewer sees it.

    Attributes:
        origin, edge_u, edge_v: (N, 3) float64 world coordinates.
        texture: (N,) int32 ids in a ``TextureBank``.
        repeats: (N, 2) float64 texture repeats along u and v.
        label: (N,) uint8 ``object id | DYNAMIC flag``.
    """

    origin: np.ndarray
    edge_u: np.ndarray
    edge_v: np.ndarray
    texture: np.ndarray
    repeats: np.ndarray
    label: np.ndarray

    def __len__(self) -> int:
        return len(self.origin)

    @property
    def normal(self) -> np.ndarray:
        """(N, 3) unit normals on the visible side."""
        n = np.cross(self.edge_v, self.edge_u)
        return n / np.linalg.norm(n, axis=1, keepdims=True)

    @property
    def corners(self) -> np.ndarray:
        """(N, 4, 3) corners in drawing order."""
        o, u, v = self.origin, self.edge_u, self.edge_v
        return np.stack([o, o + u, o + u + v, o + v], axis=1)

    @classmethod
    def empty(cls) -> QuadSet:
        z = np.zeros((0, 3))
        return cls(z, z, z, np.zeros(0, np.int32), np.zeros((0, 2)), np.zeros(0, np.uint8))

    @classmethod
    def concat(cls, sets: list[QuadSet]) -> QuadSet:
        sets = [s for s in sets if len(s)] or [cls.empty()]
        return cls(*(np.concatenate([getattr(s, f) for s in sets]) for f in
                     ('origin', 'edge_u', 'edge_v', 'texture', 'repeats', 'label')))


@dataclass(frozen=True)
class Part:
    """One box of an object, in the object's frame.

    Attributes:
        center: (x, y, z) of the box centre in metres.
        size: (sx, sy, sz) extents in metres.
        texture: texture name of every face.
        tile_m: metres covered by one texture repeat, along the face's width and height (one number: square
            tiles); None stretches the texture once over each face.
        front: texture stretched once over the +x face (door, screen, poster), or None.
    """

    center: tuple[float, float, float]
    size: tuple[float, float, float]
    texture: str
    tile_m: float | tuple[float, float] | None = None
    front: str | None = None


@dataclass(frozen=True)
class Thing:
    """A named object made of boxes, placed on the floor at ``(x, y)`` with heading ``yaw``.

    Attributes:
        obstacle: whether its footprint blocks the robot and people (False for carpets, posters, lamps).
        movable: whether it may be moved between sequences.
    """

    name: str
    x: float
    y: float
    yaw: float
    parts: tuple[Part, ...]
    movable: bool = False
    obstacle: bool = True

    @property
    def pose(self) -> np.ndarray:
        return yaw_matrix(self.x, self.y, self.yaw)

    def footprint(self) -> np.ndarray:
        """(4, 2) world xy corners of the parts' bounding rectangle (in the object frame)."""
        c = np.array([p.center for p in self.parts])[:, :2]
        h = np.array([p.size for p in self.parts])[:, :2] / 2.0
        lo, hi = (c - h).min(axis=0), (c + h).max(axis=0)
        local = np.array([[lo[0], lo[1]], [hi[0], lo[1]], [hi[0], hi[1]], [lo[0], hi[1]]])
        return local @ self.pose[:2, :2].T + [self.x, self.y]

    def moved(self, x: float, y: float, yaw: float) -> Thing:
        return replace(self, x=x, y=y, yaw=yaw)


@dataclass(frozen=True)
class Room:
    """A closed rectangular room ``[0, length] x [0, width] x [0, height]`` seen from inside.

    Attributes:
        walls: (texture, tile_m) of the walls at y = 0, x = length, y = width, x = 0 (in that order).
        floor, ceiling: (texture, tile_m).
    """

    length: float
    width: float
    height: float
    floor: tuple[str, float | None]
    ceiling: tuple[str, float | None]
    walls: tuple[tuple[str, float | None], ...]


@dataclass(frozen=True)
class Light:
    """A point light: position (x, y, z) in metres, intensity (1 lights a surface 1.5 m below to about albedo)."""

    position: tuple[float, float, float]
    intensity: float = 1.0


@dataclass(frozen=True)
class SceneSpec:
    """Everything that defines a scene layout: room, objects (base placement) and lights."""

    name: str
    room: Room
    things: tuple[Thing, ...]
    lights: tuple[Light, ...]
    ambient: float = 0.35


@dataclass(frozen=True)
class LabelInfo:
    """One entry of a label table: id (1..``ID_MASK``), name, whether it moves during a sequence (``dynamic``) and
    whether it may stand elsewhere in other sequences (``movable``)."""

    id: int
    name: str
    dynamic: bool = False
    movable: bool = False

    @property
    def value(self) -> int:
        """Label value as written in label maps: id with its DYNAMIC flag."""
        if not 0 < self.id <= ID_MASK:
            raise ValueError(f'label id {self.id} of {self.name!r} outside 1..{ID_MASK}')
        return self.id | (DYNAMIC if self.dynamic else 0)


def _face_quads(textures: TextureBank, center: np.ndarray, half: np.ndarray, part: Part,
                label: int, skip_bottom: bool) -> QuadSet:
    """The (up to) 6 outward-facing quads of an axis-aligned box in its parent frame."""
    origins, us, vs, tex, reps = [], [], [], [], []
    ex, ey, ez = np.eye(3)
    # (outward axis, sign): u = cross(up, n) (viewer's right), v = down; top/bottom use x/y.
    for axis, sign in ((0, 1), (1, 1), (0, -1), (1, -1), (2, 1), (2, -1)):
        n = sign * np.eye(3)[axis]
        if axis == 2:
            if sign < 0 and skip_bottom:
                continue
            u, v = 2 * half[0] * ex, -sign * 2 * half[1] * ey
        else:
            right = np.cross(ez, n)
            u, v = 2 * np.abs(right) @ half * right, -2 * half[2] * ez
        origin = center + n * half - u / 2 - v / 2
        name = part.front if part.front and axis == 0 and sign > 0 else part.texture
        size = np.array([np.linalg.norm(u), np.linalg.norm(v)])
        tiled = part.tile_m is not None and name == part.texture
        origins.append(origin)
        us.append(u)
        vs.append(v)
        tex.append(textures.index(name))
        reps.append(size / np.broadcast_to(np.asarray(part.tile_m, float), 2) if tiled else np.ones(2))
    k = len(origins)
    return QuadSet(np.array(origins), np.array(us), np.array(vs), np.array(tex, np.int32),
                   np.array(reps), np.full(k, label, np.uint8))


def transform_quads(quads: QuadSet, pose: np.ndarray) -> QuadSet:
    """Quads moved by the (4, 4) ``pose`` (object frame -> world)."""
    r, t = pose[:3, :3], pose[:3, 3]
    return replace(quads, origin=quads.origin @ r.T + t, edge_u=quads.edge_u @ r.T, edge_v=quads.edge_v @ r.T)


def part_quads(textures: TextureBank, part: Part, label: int) -> QuadSet:
    """Quads of one box in its object's frame; the bottom face is dropped when it rests on the floor."""
    center, half = np.asarray(part.center, float), np.asarray(part.size, float) / 2.0
    return _face_quads(textures, center, half, part, label, skip_bottom=center[2] - half[2] < 1e-3)


def thing_quads(textures: TextureBank, thing: Thing, label: int) -> QuadSet:
    """World quads of a placed object."""
    local = QuadSet.concat([part_quads(textures, p, label) for p in thing.parts])
    return transform_quads(local, thing.pose)


def room_quads(textures: TextureBank, room: Room, labels: tuple[int, ...]) -> QuadSet:
    """Inward-facing floor, ceiling and 4 wall quads; ``labels`` = (floor, ceiling, wall0..wall3)."""
    lx, wy, h = room.length, room.width, room.height
    ex, ey, ez = np.eye(3)
    # (origin, u, v) with cross(v, u) pointing into the room.
    faces = [
        ((0, wy, 0), lx * ex, -wy * ey, room.floor),
        ((0, 0, h), lx * ex, wy * ey, room.ceiling),
        ((lx, 0, h), -lx * ex, -h * ez, room.walls[0]),
        ((lx, wy, h), -wy * ey, -h * ez, room.walls[1]),
        ((0, wy, h), lx * ex, -h * ez, room.walls[2]),
        ((0, 0, h), wy * ey, -h * ez, room.walls[3]),
    ]
    origins, us, vs, tex, reps = [], [], [], [], []
    for origin, u, v, (name, tile) in faces:
        origins.append(np.array(origin, float))
        us.append(u)
        vs.append(v)
        tex.append(textures.index(name))
        size = np.array([np.linalg.norm(u), np.linalg.norm(v)])
        reps.append(size / tile if tile else np.ones(2))
    return QuadSet(np.array(origins), np.array(us), np.array(vs), np.array(tex, np.int32), np.array(reps),
                   np.array(labels, np.uint8))


@dataclass
class World:
    """The static world of one sequence: quads, label table and the robot's free space.

    Attributes:
        things: objects as placed in this sequence (same order and ids as the scene's ``things``).
        quads: static world quads.
        labels: label table of the static world (people are added by ``rapnet_loc.synth.people``).
        free: free space of the floor.
    """

    things: tuple[Thing, ...]
    quads: QuadSet
    labels: list[LabelInfo]
    free: FreeSpace = field(repr=False)

    @classmethod
    def build(cls, spec: SceneSpec, textures: TextureBank, things: tuple[Thing, ...] | None = None) -> World:
        """World of ``spec`` with objects at ``things`` (the spec's base placement when None)."""
        things = spec.things if things is None else things
        labels = [LabelInfo(i + 1, n) for i, n in enumerate(('floor', 'ceiling', 'wall_south', 'wall_east',
                                                              'wall_north', 'wall_west'))]
        sets = [room_quads(textures, spec.room, tuple(info.value for info in labels))]
        for thing in things:
            info = LabelInfo(len(labels) + 1, thing.name, movable=thing.movable)
            labels.append(info)
            sets.append(thing_quads(textures, thing, info.value))
        return cls(things, QuadSet.concat(sets), labels, FreeSpace.of(spec.room, things))


class FreeSpace:
    """Clearance map of the floor: distance (m) from a point to the nearest wall or obstacle footprint.

    Args:
        origin: world xy of the centre of grid cell (0, 0).
        resolution: cell size in metres.
        grid: (rows, cols) float32 clearance in metres; row = y, column = x.
    """

    RESOLUTION = 0.05

    def __init__(self, origin: np.ndarray, resolution: float, grid: np.ndarray):
        self.origin = np.asarray(origin, float)
        self.resolution = resolution
        self.grid = grid

    @classmethod
    def of(cls, room: Room, things: tuple[Thing, ...]) -> FreeSpace:
        """Free space of ``room`` with the footprints of obstacle ``things``."""
        res = cls.RESOLUTION
        cols, rows = int(np.ceil(room.length / res)), int(np.ceil(room.width / res))
        free = np.full((rows + 2, cols + 2), 255, np.uint8)   # one blocked cell of wall all around
        free[0, :] = free[-1, :] = free[:, 0] = free[:, -1] = 0
        origin = np.array([-res / 2, -res / 2])   # cell (1, 1) is centred at (res / 2, res / 2)
        for poly in (t.footprint() for t in things if t.obstacle):
            pts = np.round(((poly - origin) / res) * 16).astype(np.int32)
            cv2.fillConvexPoly(free, pts, 0, lineType=cv2.LINE_8, shift=4)
        dist = cv2.distanceTransform(free, cv2.DIST_L2, cv2.DIST_MASK_PRECISE) * res
        return cls(origin, res, dist.astype(np.float32))

    def clearance(self, xy: np.ndarray) -> np.ndarray:
        """(N,) clearance in metres at world points (N, 2) (bilinear; 0 outside the grid)."""
        xy = np.atleast_2d(np.asarray(xy, float))
        rc = ((xy - self.origin) / self.resolution)[:, ::-1].T
        return ndimage.map_coordinates(self.grid, rc, order=1, mode='constant', cval=0.0)

    def segment_clear(self, a: np.ndarray, b: np.ndarray, min_clearance: float) -> bool:
        """Whether every point of segment ``a``-``b`` (xy) has at least ``min_clearance``."""
        n = max(2, int(np.ceil(np.linalg.norm(np.subtract(b, a)) / (self.resolution / 2))) + 1)
        pts = np.linspace(a, b, n)
        return bool(np.all(self.clearance(pts) >= min_clearance))

    def region(self, min_clearance: float) -> np.ndarray:
        """(rows, cols) bool mask of the largest connected area with at least ``min_clearance``."""
        labels, count = ndimage.label(self.grid >= min_clearance)
        if count == 0:
            return np.zeros(self.grid.shape, bool)
        sizes = np.bincount(labels.ravel())[1:]
        return labels == 1 + int(np.argmax(sizes))

    def sample(self, rng: np.random.Generator, mask: np.ndarray, count: int) -> np.ndarray:
        """(K, 2) random world points in cells of the bool ``mask`` (rows, cols) (K <= count; 0 if it is empty)."""
        rows, cols = np.nonzero(mask)
        if len(rows) == 0:
            return np.zeros((0, 2))
        pick = rng.choice(len(rows), size=min(count, len(rows)), replace=False)
        jitter = rng.uniform(-0.5, 0.5, (len(pick), 2))
        return self.origin + (np.stack([cols[pick], rows[pick]], axis=1) + jitter) * self.resolution
