"""The map: keyframes, map points and the covisibility graph (ORB-SLAM2 ``Map``, ``KeyFrame``, ``MapPoint``).

ORB-SLAM2's ``MapPoint`` objects are the rows of the ``MapPoints`` table here: every attribute is a column
(array indexed by point id), so that tracking projects and matches thousands of points with vectorised numpy
operations. Point ids are never reused; culled points stay in the table flagged ``bad``.

Several maps (ORB-SLAM3's Atlas): when tracking is lost for good the front end starts a new map, and maps merge when
a place of one is recognized from another (``rapnet_loc.slam.merging``). Here all maps share one ``Map`` object:
each keyframe carries the id of its map (``KeyFrame.map_id``; map 0 is the first), maps share no point, and so no
covisibility edge, until they merge. Each map has its own world frame; its first keyframe (its ``anchor``) is held
fixed by bundle adjustment and never culled. ``anchored`` maps are those whose world frame is the first map's:
map 0, and a map started at the pose that wheel odometry predicted. A merge moves a map's keyframes and points into
the frame of the other (``merge``) and records the transform, so poses tracked in it before can be moved too
(``to_first_frame``).
"""
from __future__ import annotations

from collections import Counter

import numpy as np

from rapnet_loc.features.matching import pairwise_distances
from rapnet_loc.geometry import invert
from rapnet_loc.slam.camera import Camera
from rapnet_loc.slam.frame import Frame

COVISIBILITY_MIN_SHARED = 15
VIEW_COS_MIN = 0.5     # a point is searched for at most 60 degrees from its mean viewing direction


class KeyFrame:
    """A frame promoted to the map (ORB-SLAM2 ``KeyFrame``).

    Attributes:
        id: keyframe id (0-based, insertion order).
        frame: the tracked frame it was made from (keypoints, depth, descriptors).
        T_cw: (4, 4) world-to-camera pose, the map's current estimate (refined by bundle adjustment).
        point_ids: (N,) int64 map point observed at each keypoint, -1 for none.
        map_id: the map it belongs to (see the module doc).
    """

    def __init__(self, kf_id: int, frame: Frame, map_id: int = 0):
        self.id = kf_id
        self.frame = frame
        self.T_cw = frame.T_cw.copy()
        self.point_ids = np.full(len(frame), -1, np.int64)
        self.map_id = map_id

    @property
    def T_wc(self) -> np.ndarray:
        """(4, 4) camera-to-world pose."""
        return invert(self.T_cw)

    @property
    def center(self) -> np.ndarray:
        """(3,) camera centre in the world."""
        return -self.T_cw[:3, :3].T @ self.T_cw[:3, 3]


class _Column:
    """A ``MapPoints`` column: the first ``len(points)`` rows of its storage array (a writable view)."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, points: MapPoints, owner: type | None = None) -> np.ndarray:
        return points._data[self.name][:points._n]


class MapPoints:
    """Table of map points; row ``i`` is map point ``i``.

    Columns (writable views of ``len(self)`` rows):
        positions: (n, 3) world coordinates.
        descriptors: (n, B) representative descriptor.
        normals: (n, 3) mean unit viewing direction.
        min_dist, max_dist: (n,) distance range in which the point is detectable at some pyramid level.
        found, visible: (n,) int64 times matched by tracking / times inside a tracked frame's frustum.
        n_obs: (n,) int64 number of keyframes observing the point (``len(observations[i])``).
        bad: (n,) bool, culled points.
        first_kf: (n,) int64 id of the keyframe that created the point.
        probation: (n,) int64 consistent observations the point still needs before tracking trusts it for pose
            estimation (0: trusted; points added here start trusted, tracking puts those it creates on probation).
        strikes: (n,) int64 inconsistent observations while on probation.
    Attributes:
        observations: ``observations[i]`` maps keyframe id -> keypoint index of point ``i`` in that keyframe.
    """

    positions = _Column()
    descriptors = _Column()
    normals = _Column()
    min_dist = _Column()
    max_dist = _Column()
    found = _Column()
    visible = _Column()
    n_obs = _Column()
    bad = _Column()
    first_kf = _Column()
    probation = _Column()
    strikes = _Column()

    def __init__(self):
        self._n = 0
        self._data: dict[str, np.ndarray] = {}
        self._allocate(0, (0,), np.uint8)
        self.observations: list[dict[int, int]] = []

    def __len__(self) -> int:
        return self._n

    @classmethod
    def columns(cls) -> tuple[str, ...]:
        """Names of the columns, in declaration order."""
        return tuple(name for name, attr in vars(cls).items() if isinstance(attr, _Column))

    def _allocate(self, capacity: int, descriptor_shape: tuple[int, ...], descriptor_dtype: np.dtype) -> None:
        shapes = {'positions': ((3,), np.float64), 'descriptors': (descriptor_shape, descriptor_dtype),
                  'normals': ((3,), np.float64), 'min_dist': ((), np.float64), 'max_dist': ((), np.float64),
                  'found': ((), np.int64), 'visible': ((), np.int64), 'n_obs': ((), np.int64), 'bad': ((), bool),
                  'first_kf': ((), np.int64), 'probation': ((), np.int64), 'strikes': ((), np.int64)}
        new = {name: np.zeros((capacity,) + shape, dtype) for name, (shape, dtype) in shapes.items()}
        if self._n:
            for name, old in self._data.items():
                new[name][:self._n] = old[:self._n]
        self._data = new

    def add(self, positions: np.ndarray, descriptors: np.ndarray, kf_id: int) -> np.ndarray:
        """Append points with (k, 3) positions and (k, B) descriptors created by keyframe ``kf_id``; their ids (k,)."""
        k = len(positions)
        if self._n + k > len(self._data['positions']):
            self._allocate(max(1024, 2 * (self._n + k)), descriptors.shape[1:], descriptors.dtype)
        ids = np.arange(self._n, self._n + k)
        self._n += k
        self.positions[ids] = positions
        self.descriptors[ids] = descriptors
        self.first_kf[ids] = kf_id
        self.found[ids] = 1
        self.visible[ids] = 1
        self.observations.extend({} for _ in range(k))
        return ids

    def predict_level(self, ids: np.ndarray, dist: np.ndarray, scale_factor: float, n_levels: int) -> np.ndarray:
        """(k,) pyramid level at which points ``ids`` should be detected from distance ``dist`` (k,) metres (0 for
        a single-scale extractor)."""
        if n_levels <= 1 or scale_factor <= 1.0:
            return np.zeros(len(ids), np.int64)
        ratio = self.max_dist[ids] / np.maximum(dist, 1e-9)
        level = np.ceil(np.log(np.maximum(ratio, 1e-9)) / np.log(scale_factor))
        return np.clip(level, 0, n_levels - 1).astype(np.int64)


class Map:
    """Keyframes, map points and the covisibility graph.

    Args:
        scale_factor, n_levels: the feature pyramid (for the points' scale-invariance distances).
    Attributes:
        keyframes: id -> KeyFrame, in insertion order.
        points: the ``MapPoints`` table.
        covisibility: keyframe id -> {covisible keyframe id: number of shared map points}.
        active_map: the map new keyframes join (the one tracking is in).
        anchored: ids of the maps whose world frame is the first map's (see the module doc).
        merged: map id -> (id of the map it was merged into, (4, 4) transform from its world frame to that one's).
    """

    def __init__(self, scale_factor: float, n_levels: int):
        self.scale_factor = float(scale_factor)
        self.n_levels = int(n_levels)
        self.keyframes: dict[int, KeyFrame] = {}
        self.points = MapPoints()
        self.covisibility: dict[int, dict[int, int]] = {}
        self.active_map = 0
        self.anchored: set[int] = {0}
        self.merged: dict[int, tuple[int, np.ndarray]] = {}

    @property
    def map_ids(self) -> list[int]:
        """Ids of the maps that hold keyframes, ascending."""
        return sorted({kf.map_id for kf in self.keyframes.values()})

    @property
    def anchors(self) -> set[int]:
        """Keyframe ids of the maps' anchors: the first keyframe of each map (the oldest kept, after a merge)."""
        first: dict[int, int] = {}
        for k, kf in self.keyframes.items():
            first.setdefault(kf.map_id, k)
        return set(first.values())

    def start_map(self, anchored: bool) -> int:
        """A new, empty map that new keyframes join from now on; ``anchored`` when its world frame is the first
        map's. Its id."""
        self.active_map = max([*self.map_ids, *self.merged, self.active_map]) + 1
        if anchored:
            self.anchored.add(self.active_map)
        return self.active_map

    def merge(self, src: int, dst: int, S: np.ndarray) -> None:
        """Move map ``src`` into map ``dst``: its keyframes' poses and its points go through ``S`` (4, 4), the
        rigid transform from ``src``'s world frame to ``dst``'s, and its keyframes join ``dst``."""
        kfs = [kf for kf in self.keyframes.values() if kf.map_id == src]
        S_inv = invert(S)
        for kf in kfs:
            kf.T_cw = kf.T_cw @ S_inv
            kf.map_id = dst
        ids = self.points_of([kf.id for kf in kfs])
        R, t = S[:3, :3], S[:3, 3]
        self.points.positions[ids] = self.points.positions[ids] @ R.T + t
        self.points.normals[ids] = self.points.normals[ids] @ R.T
        self.merged[src] = (dst, S.copy())
        self.anchored.discard(src)
        if self.active_map == src:
            self.active_map = dst

    def to_root(self, map_id: int) -> tuple[int, np.ndarray]:
        """The map that map ``map_id`` is part of now (through the merges since) and the (4, 4) transform from
        ``map_id``'s world frame as it was when poses were tracked in it to that map's."""
        S = np.eye(4)
        while map_id in self.merged:
            map_id, step = self.merged[map_id]
            S = step @ S
        return map_id, S

    def to_first_frame(self, map_id: int) -> np.ndarray | None:
        """(4, 4) transform from map ``map_id``'s world frame as it was when poses were tracked in it to the first
        map's (through the merges since), or None while it is in a map that is not anchored."""
        root, S = self.to_root(map_id)
        return S if root in self.anchored else None

    def root(self, map_id: int) -> int:
        """The map that map ``map_id`` is part of now, through the merges since."""
        return self.to_root(map_id)[0]

    def common_frame(self, map_id: int) -> tuple[int, np.ndarray]:
        """A world frame that map ``map_id``'s poses can be compared in: -1 for the first map's when its map is
        anchored, else its root map's id; and the (4, 4) transform into it (``to_root``)."""
        root, S = self.to_root(map_id)
        return (-1 if root in self.anchored else root), S

    def replace_point(self, keep: int, drop: int) -> None:
        """Point ``drop`` is point ``keep`` seen twice (ORB-SLAM2 ``MapPoint::Replace``): its observations move to
        ``keep`` (where the keyframe does not observe ``keep`` already) and it is culled."""
        pts = self.points
        moved = [(kf_id, i) for kf_id, i in pts.observations[drop].items() if kf_id not in pts.observations[keep]]
        self.erase_points(np.array([drop]))
        for kf_id, i in moved:
            self.add_observations(self.keyframes[kf_id], np.array([i]), np.array([keep]))
        pts.found[keep] += pts.found[drop]
        pts.visible[keep] += pts.visible[drop]

    def add_keyframe(self, frame: Frame) -> KeyFrame:
        """Promote a tracked frame into the active map; it observes the map points of its inlier matches. Ids
        increase with insertion and are not reused after culling (``erase_keyframe``)."""
        kf = KeyFrame(max(self.keyframes, default=-1) + 1, frame, self.active_map)
        self.keyframes[kf.id] = kf
        self.covisibility[kf.id] = {}
        matched = frame.matched()
        self.add_observations(kf, matched, frame.point_ids[matched])
        return kf

    def add_observations(self, kf: KeyFrame, kp_index: np.ndarray, point_ids: np.ndarray) -> None:
        """Record that keypoints ``kp_index`` (k,) of ``kf`` observe points ``point_ids`` (k,)."""
        kf.point_ids[kp_index] = point_ids
        for i, pid in zip(kp_index.tolist(), point_ids.tolist()):
            self.points.observations[pid][kf.id] = i
        self.points.n_obs[point_ids] += 1

    def create_points(self, kf: KeyFrame, kp_index: np.ndarray) -> np.ndarray:
        """New map points from the depth of keypoints ``kp_index`` (k,) of ``kf``; their ids (k,)."""
        T_wc = kf.T_wc
        ids = self.add_points(kf, kp_index, kf.frame.points_c[kp_index] @ T_wc[:3, :3].T + T_wc[:3, 3])
        self.update_geometry(ids)
        return ids

    def add_points(self, kf: KeyFrame, kp_index: np.ndarray, positions: np.ndarray) -> np.ndarray:
        """New map points at ``positions`` (k, 3), created and observed by keypoints ``kp_index`` (k,) of ``kf``
        (their descriptors); their ids (k,). Their normals and distance ranges are left to ``update_geometry``,
        once every observation is added."""
        ids = self.points.add(positions, kf.frame.features.descriptors[kp_index], kf.id)
        self.add_observations(kf, kp_index, ids)
        return ids

    def erase_points(self, ids: np.ndarray) -> None:
        """Cull points ``ids``: flag them bad and remove their observations from the keyframes."""
        for pid in np.asarray(ids).tolist():
            for kf_id, i in self.points.observations[pid].items():
                self.keyframes[kf_id].point_ids[i] = -1
            self.points.observations[pid] = {}
        self.points.n_obs[ids] = 0
        self.points.bad[ids] = True

    def erase_observations(self, point_ids: np.ndarray, kf_ids: np.ndarray) -> None:
        """Remove the observations (k,) of points ``point_ids`` by keyframes ``kf_ids``; points left unobserved
        are flagged bad."""
        for pid, kf_id in zip(point_ids.tolist(), kf_ids.tolist()):
            i = self.points.observations[pid].pop(kf_id, None)
            if i is not None:
                self.keyframes[kf_id].point_ids[i] = -1
                self.points.n_obs[pid] -= 1
            if not self.points.observations[pid]:
                self.points.bad[pid] = True

    def erase_keyframe(self, kf_id: int) -> None:
        """Remove keyframe ``kf_id`` (ORB-SLAM2 ``KeyFrame::SetBadFlag``): its observations and covisibility edges
        go, and points left with a single observing keyframe are culled, as ORB-SLAM2 does."""
        kf = self.keyframes[kf_id]
        pids = kf.point_ids[kf.point_ids >= 0]
        self.erase_observations(pids, np.full(len(pids), kf_id))
        self.erase_points(pids[(self.points.n_obs[pids] == 1) & ~self.points.bad[pids]])
        for other in self.covisibility.pop(kf_id):
            self.covisibility[other].pop(kf_id, None)
        del self.keyframes[kf_id]
        self.update_geometry(pids[~self.points.bad[pids]])

    def points_of(self, kf_ids: list[int]) -> np.ndarray:
        """(k,) sorted ids of the map points (not culled) that keyframes ``kf_ids`` observe."""
        ids = np.unique(np.concatenate([self.keyframes[k].point_ids for k in kf_ids] or [np.zeros(0, np.int64)]))
        ids = ids[ids >= 0]
        return ids[~self.points.bad[ids]]

    def observation_arrays(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Observations of points ``ids`` as three (m,) arrays: point id, keyframe id, keypoint index."""
        rows = [(pid, kf_id, i) for pid in ids.tolist() for kf_id, i in self.points.observations[pid].items()]
        if not rows:
            return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64)
        return tuple(np.array(col, dtype=np.int64) for col in zip(*rows))

    def update_geometry(self, ids: np.ndarray) -> None:
        """Recompute normals and scale-invariance distances of points ``ids`` (ORB-SLAM2 ``UpdateNormalAndDepth``).

        The normal is the mean unit vector from the observing cameras to the point; the distance range comes from
        the reference keyframe's distance and keypoint level: ``max = dist * scale**level``,
        ``min = max / scale**(n_levels - 1)``. The reference is the creating keyframe, or the oldest observing one
        once the creator's observation has been erased. Points without observations are left as they are.
        """
        ids = np.asarray(ids, dtype=np.int64)
        pid, kf_ids, _ = self.observation_arrays(ids)
        if len(pid) == 0:
            return
        pts = self.points
        kf_unique, kf_row = np.unique(kf_ids, return_inverse=True)
        centers = np.array([self.keyframes[k].center for k in kf_unique.tolist()])[kf_row]
        rays = pts.positions[pid] - centers
        rays /= np.maximum(np.linalg.norm(rays, axis=1, keepdims=True), 1e-12)
        normals = np.zeros((len(pts), 3))
        np.add.at(normals, pid, rays)
        n = normals[ids]
        pts.normals[ids] = n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
        ids = np.unique(pid)
        refs = [(k if k in obs else min(obs), obs) for k, obs in
                zip(pts.first_kf[ids].tolist(), (pts.observations[p] for p in ids.tolist()))]
        ref_kfs = [self.keyframes[k] for k, _ in refs]
        levels = np.array([kf.frame.features.levels[obs[kf.id]] for kf, (_, obs) in zip(ref_kfs, refs)], np.float64)
        dist = np.linalg.norm(pts.positions[ids] - np.array([kf.center for kf in ref_kfs]), axis=1)
        pts.max_dist[ids] = dist * self.scale_factor ** levels
        pts.min_dist[ids] = pts.max_dist[ids] / self.scale_factor ** (self.n_levels - 1)

    def in_frustum(self, ids: np.ndarray, T_cw: np.ndarray,
                   camera: Camera) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Points ``ids`` that a camera at ``T_cw`` (4, 4) should see (ORB-SLAM2 ``isInFrustum``): projecting into
        the image, within their scale-invariance distance range and at most 60 degrees from their mean viewing
        direction. Returns those (k,) ids, their (k,) distances to the camera, viewing-angle cosines and (k, 2)
        undistorted pixels."""
        pts = self.points
        positions = pts.positions[ids]
        R, t = T_cw[:3, :3], T_cw[:3, 3]
        uv, ok = camera.project_visible(positions @ R.T + t)
        rays = positions + R.T @ t
        dist = np.linalg.norm(rays, axis=1)
        ok &= (dist >= 0.8 * pts.min_dist[ids]) & (dist <= 1.2 * pts.max_dist[ids])
        view_cos = np.einsum('ij,ij->i', rays, pts.normals[ids]) / np.maximum(dist, 1e-12)
        ok &= view_cos >= VIEW_COS_MIN
        return ids[ok], dist[ok], view_cos[ok], uv[ok]

    def update_descriptors(self, ids: np.ndarray, distance: str) -> None:
        """Set each point's descriptor to its most distinctive observation: the one with the least median distance
        to the others (ORB-SLAM2 ``ComputeDistinctiveDescriptors``). Points seen fewer than 3 times keep theirs."""
        pts = self.points
        for pid in np.asarray(ids).tolist():
            obs = pts.observations[pid]
            if len(obs) < 3:
                continue
            desc = np.stack([self.keyframes[k].frame.features.descriptors[i] for k, i in obs.items()])
            dist = pairwise_distances(desc, desc, distance)
            pts.descriptors[pid] = desc[np.argmin(np.median(dist, axis=1))]

    def update_connections(self, kf: KeyFrame) -> None:
        """Covisibility edges of ``kf``: keyframes sharing at least 15 map points (or the best one if none do)."""
        counts: Counter[int] = Counter()
        for pid in kf.point_ids[kf.point_ids >= 0].tolist():
            counts.update(self.points.observations[pid].keys())
        counts.pop(kf.id, None)
        if not counts:
            return
        edges = {k: w for k, w in counts.items() if w >= COVISIBILITY_MIN_SHARED}
        if not edges:
            best = max(counts, key=counts.get)
            edges = {best: counts[best]}
        for old in set(self.covisibility[kf.id]) - set(edges):
            self.covisibility[old].pop(kf.id, None)
        self.covisibility[kf.id] = edges
        for other, weight in edges.items():
            self.covisibility[other][kf.id] = weight

    def covisible(self, kf_id: int, n: int | None = None) -> list[int]:
        """Ids of the keyframes covisible with ``kf_id``, most shared points first (at most ``n``)."""
        edges = self.covisibility.get(kf_id, {})
        return sorted(edges, key=lambda k: -edges[k])[:n]
