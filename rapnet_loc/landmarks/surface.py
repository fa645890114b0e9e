"""Scene landmarks from posed RGB-D frames, as VS-Net defines them: the scene surface is over-segmented into
patches, and the landmark of a patch is the surface point nearest its centre.

``fuse_points`` back-projects the depth of every frame into one voxel-downsampled world point cloud,
``oversegment`` cuts it into supervoxel-like patches (local k-means over a grid of seeds, position first, surface
normal second) and ``build_landmarks`` does both for frames such as ``rapnet_loc.rapnet.data.TrainFrame``.
Per-image training targets (patch label maps, directions to landmarks) are in ``rapnet_loc.landmarks.targets``.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from rapnet_loc.errors import ConfigError, DatasetError

_KEY_BITS = 21  # voxel indices are packed into one int64 key, 21 bits per axis
_NORMAL_NEIGHBOURS = 16
_SEED_CANDIDATES = 27
_SEED_REACH = 1.5  # a point may join seeds within this many seed_resolution
_CHUNK = 65536  # points per batch in the neighbour queries


@dataclass
class SceneLandmarks:
    """Patches of a scene surface and their landmarks.

    Attributes:
        points: (P, 3) float32 world surface points (voxel-downsampled).
        patch: (P,) int32 patch id of each point, 1..N; 0 = dropped (its patch was too small).
        landmarks: (N, 3) float64; row i is the landmark of patch i + 1, the point of the patch nearest its
            centroid (a real surface point, not a floating centroid).
        voxel: voxel size of ``points``, metres.
        seed_resolution: seed grid spacing of the over-segmentation, metres (about the patch size).
    """

    points: np.ndarray
    patch: np.ndarray
    landmarks: np.ndarray
    voxel: float
    seed_resolution: float

    @property
    def num_landmarks(self) -> int:
        return len(self.landmarks)


def _check(voxel: float | None, seed_resolution: float | None = None, min_points: int | None = None) -> None:
    """ConfigError unless voxel > 0, seed_resolution > voxel (> 0 when voxel is None) and min_points >= 1."""
    if voxel is not None and not voxel > 0:
        raise ConfigError(f'voxel must be > 0 metres, got {voxel}')
    if seed_resolution is not None and not seed_resolution > (voxel or 0):
        raise ConfigError(f'seed_resolution must be larger than the voxel ({voxel or 0} m), got {seed_resolution}')
    if min_points is not None and min_points < 1:
        raise ConfigError(f'min_points must be >= 1, got {min_points}')


def _voxel_keys(points: np.ndarray, size: float) -> np.ndarray:
    """(M,) int64 key of the cell of side ``size`` holding each of the (M, 3) points; keys sort like (x, y, z)."""
    cell = np.floor(points / size).astype(np.int64)
    half = 1 << (_KEY_BITS - 1)
    if len(cell) and (cell.min() < -half or cell.max() >= half):
        raise DatasetError(f'points reach {np.abs(points).max():.1f} m from the origin, more than {half} cells of '
                           f'{size} m: check the poses and depth units, or use a larger cell')
    cell += half
    return (cell[:, 0] << (2 * _KEY_BITS)) | (cell[:, 1] << _KEY_BITS) | cell[:, 2]


def _reduce(keys: np.ndarray, sums: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Merge rows with the same key: (K,) sorted unique keys, (K, 3) summed sums, (K,) summed counts."""
    unique, inverse = np.unique(keys, return_inverse=True)
    merged = np.stack([np.bincount(inverse, sums[:, d], len(unique)) for d in range(3)], axis=1)
    return unique, merged, np.bincount(inverse, counts, len(unique))


def _backproject(depth: np.ndarray, K: np.ndarray, T_wc: np.ndarray, depth_max: float) -> np.ndarray:
    """(M, 3) float64 world points of the valid pixels (0 < d <= depth_max) of one (H, W) depth image."""
    depth = np.asarray(depth)
    i, j = np.nonzero((depth > 0) & (depth <= depth_max))
    z = depth[i, j].astype(np.float64)
    pc = np.stack([(j - K[0, 2]) / K[0, 0] * z, (i - K[1, 2]) / K[1, 1] * z, z], axis=1)
    T_wc = np.asarray(T_wc, dtype=np.float64)
    return np.einsum('ij,nj->ni', T_wc[:3, :3], pc) + T_wc[:3, 3]


def _fuse(views: Iterable[tuple[np.ndarray, np.ndarray, np.ndarray]], voxel: float, depth_max: float) -> np.ndarray:
    """``fuse_points`` over (depth, K, T_wc) triples, read one at a time."""
    _check(voxel)
    if not depth_max > 0:
        raise ConfigError(f'depth_max must be > 0 metres, got {depth_max}')
    empty = np.empty(0, np.int64), np.empty((0, 3)), np.empty(0)
    done, pending, n_pending, frames = empty, [], 0, 0
    for depth, K, T_wc in views:
        frames += 1
        pts = _backproject(depth, K, T_wc, depth_max)
        pending.append(_reduce(_voxel_keys(pts, voxel), pts, np.ones(len(pts))))
        n_pending += len(pending[-1][0])
        if n_pending > max(1_000_000, len(done[0])):
            done = _reduce(*(np.concatenate(parts) for parts in zip(done, *pending)))
            pending, n_pending = [], 0
    done = _reduce(*(np.concatenate(parts) for parts in zip(done, *pending)))
    if not len(done[0]):
        raise DatasetError(f'no valid depth (0 < d <= {depth_max} m) in any of the {frames} frames')
    return (done[1] / done[2][:, None]).astype(np.float32)


def fuse_points(depths: Iterable[np.ndarray], Ks: Iterable[np.ndarray], T_wcs: Iterable[np.ndarray],
                voxel: float = 0.02, depth_max: float = 6.0) -> np.ndarray:
    """World point cloud of posed depth images, one point per occupied voxel.

    Every valid depth pixel (0 < d <= depth_max) of every frame is back-projected to the world; each voxel of side
    ``voxel`` that holds points becomes their mean. Frames are reduced to voxels one at a time (and the running
    result merged now and then), so memory grows with the scene's surface, not with the number of frames.

    Args:
        depths: (H, W) float32 metres aligned to the colour camera, one per frame (any iterables, read lazily).
        Ks: (3, 3) intrinsics of each depth image (pixel (0, 0) centre at (0, 0)).
        T_wcs: (4, 4) camera-to-world pose of each frame.
    Returns:
        (P, 3) float32 world points, ordered by voxel (x, then y, then z).
    Raises:
        ConfigError: voxel <= 0 or depth_max <= 0. DatasetError: no valid depth in any frame.
        ValueError: the three iterables differ in length.
    """
    return _fuse(zip(depths, Ks, T_wcs, strict=True), voxel, depth_max)


def _normals(points: np.ndarray, tree: cKDTree) -> np.ndarray:
    """(P, 3) unit normals of (P, 3) points: the least-variance direction of each point's nearest neighbours."""
    k = min(_NORMAL_NEIGHBOURS, len(points))
    normals = np.empty((len(points), 3))
    for start in range(0, len(points), _CHUNK):
        _, idx = tree.query(points[start:start + _CHUNK], k=k)
        nb = points[idx.reshape(len(idx), k)]
        nb = nb - nb.mean(axis=1, keepdims=True)
        _, vectors = np.linalg.eigh(np.einsum('nki,nkj->nij', nb, nb))
        normals[start:start + _CHUNK] = vectors[:, :, 0]
    return normals


def _first_per_group(groups: np.ndarray, score: np.ndarray) -> np.ndarray:
    """Index of the lowest-``score`` row of each group (ties: lowest index), ordered by group."""
    order = np.lexsort((score, groups))
    first = np.ones(len(order), bool)
    first[1:] = groups[order[1:]] != groups[order[:-1]]
    return order[first]


def _assign(points: np.ndarray, normals: np.ndarray, seeds: np.ndarray, seed_resolution: float,
            normal_weight: float) -> np.ndarray:
    """(P,) index into ``seeds`` (point indices) of the seed each point joins: the nearest under the combined
    spatial and normal distance among the seeds within reach (the spatially nearest seed is always a candidate)."""
    tree = cKDTree(points[seeds])
    k = min(_SEED_CANDIDATES, len(seeds))
    labels = np.empty(len(points), np.int64)
    for start in range(0, len(points), _CHUNK):
        p = points[start:start + _CHUNK]
        dist, idx = tree.query(p, k=k)
        dist, idx = dist.reshape(len(p), k), idx.reshape(len(p), k)
        cos = np.abs(np.einsum('nj,nkj->nk', normals[start:start + _CHUNK], normals[seeds[idx]]))
        cost = (dist / seed_resolution) ** 2 + normal_weight * (1 - cos)
        cost[:, 1:][dist[:, 1:] > _SEED_REACH * seed_resolution] = np.inf
        labels[start:start + _CHUNK] = idx[np.arange(len(p)), np.argmin(cost, axis=1)]
    return labels


def _centre_points(points: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each label present in ``labels`` (sorted): the label and the index of its point nearest its members'
    mean."""
    present, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    mean = np.stack([np.bincount(inverse, points[:, d]) for d in range(3)], axis=1) / counts[:, None]
    return present, _first_per_group(inverse, np.sum((points - mean[inverse]) ** 2, axis=1))


def oversegment(points: np.ndarray, seed_resolution: float = 0.12, min_points: int = 30, iterations: int = 5,
                normal_weight: float = 0.2, voxel: float | None = None) -> SceneLandmarks:
    """Supervoxel-style over-segmentation of a surface point cloud, the spatial term dominant.

    Seeds are one point per occupied cell of a ``seed_resolution`` grid (the point nearest the cell centre). Then,
    ``iterations`` times, each point joins the seed (among those within 1.5 ``seed_resolution``) that minimises
    ``sqrt((d / seed_resolution)^2 + normal_weight * (1 - |n_point . n_seed|))``, normals from PCA of each point's
    16 nearest neighbours, and each seed moves to its member point nearest the members' mean (seeds without
    members vanish). Patches with fewer than ``min_points`` points are dropped; the others are numbered 1..N in
    the order of their landmark's index in ``points``. Deterministic for the same input.

    Args:
        points: (P, 3) surface points, e.g. ``fuse_points``.
        voxel: their spacing in metres (recorded in the result; rendering splats points this large); None: the
            median distance from a point to its nearest neighbour.
    Raises:
        ConfigError: invalid arguments. DatasetError: no points, or no patch of ``min_points`` points.
    """
    _check(voxel, seed_resolution, min_points)
    if iterations < 1:
        raise ConfigError(f'iterations must be >= 1, got {iterations}')
    if normal_weight < 0:
        raise ConfigError(f'normal_weight must be >= 0, got {normal_weight}')
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    if not len(pts):
        raise DatasetError('no points to over-segment')
    tree = cKDTree(pts)
    if voxel is None:
        voxel = float(np.median(tree.query(pts, k=2)[0][:, 1])) if len(pts) > 1 else seed_resolution / 2
    normals = _normals(pts, tree)
    keys = _voxel_keys(pts, seed_resolution)
    cell_centre = (np.floor(pts / seed_resolution) + 0.5) * seed_resolution
    seeds = _first_per_group(keys, np.sum((pts - cell_centre) ** 2, axis=1))
    for _ in range(iterations):
        labels = _assign(pts, normals, seeds, seed_resolution, normal_weight)
        present, seeds = _centre_points(pts, labels)
        labels = np.searchsorted(present, labels)
    counts = np.bincount(labels, minlength=len(seeds))
    keep = np.flatnonzero(counts >= min_points)
    if not len(keep):
        raise DatasetError(f'no patch has {min_points} points or more: the {len(pts)} points form {len(seeds)} '
                           f'patches of at most {counts.max()} points at seed_resolution {seed_resolution} m; use a '
                           f'smaller min_points or a larger seed_resolution')
    keep = keep[np.argsort(seeds[keep])]
    new_id = np.zeros(len(seeds), np.int32)
    new_id[keep] = np.arange(1, len(keep) + 1)
    return SceneLandmarks(np.asarray(points, dtype=np.float32).reshape(-1, 3), new_id[labels], pts[seeds[keep]],
                          float(voxel), float(seed_resolution))


def build_landmarks(frames: Iterable, voxel: float = 0.02, seed_resolution: float = 0.12, min_points: int = 30,
                    depth_max: float = 6.0) -> SceneLandmarks:
    """Landmarks of the scene seen by posed RGB-D frames: ``fuse_points`` then ``oversegment``.

    Args:
        frames: objects with ``.depth`` (H, W) metres aligned to colour, ``.K`` (3, 3) and camera-to-world
            ``.T_wc`` (4, 4), e.g. ``rapnet_loc.rapnet.data.TrainFrame``.
    Raises:
        ConfigError: invalid arguments. DatasetError: no valid depth, or no patch survives.
    """
    _check(voxel, seed_resolution, min_points)
    points = _fuse(((f.depth, f.K, f.T_wc) for f in frames), voxel, depth_max)
    return oversegment(points, seed_resolution, min_points, voxel=voxel)
