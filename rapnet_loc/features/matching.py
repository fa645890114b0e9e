"""Descriptor distances and matching: mutual nearest neighbours with a ratio test, and search by projection.

Descriptors are (N, B) uint8 packed binary strings compared by Hamming distance, or (N, D) float32 vectors compared
by Euclidean distance (``distance='hamming'`` or ``'l2'``, as in ``Features.distance``). Distances are float32.
"""
from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from rapnet_loc.features.base import DISTANCES


def _check(distance: str) -> None:
    if distance not in DISTANCES:
        raise ValueError(f'unknown descriptor distance {distance!r}; expected one of {DISTANCES}')


def _words(desc: np.ndarray) -> np.ndarray:
    """Packed binary descriptors (N, B) as 64-bit words (N, B/8) when B is a multiple of 8 (fewer popcounts)."""
    desc = np.ascontiguousarray(desc)
    return desc.view(np.uint64) if desc.shape[1] % 8 == 0 else desc


def row_distances(a: np.ndarray, b: np.ndarray, distance: str) -> np.ndarray:
    """(P,) distances between the rows ``a[p]`` and ``b[p]`` of two (P, B) descriptor arrays."""
    _check(distance)
    if distance == 'hamming':
        return np.bitwise_count(_words(a) ^ _words(b)).sum(axis=1, dtype=np.int32).astype(np.float32)
    return np.linalg.norm(a.astype(np.float32) - b.astype(np.float32), axis=1)


def pairwise_distances(a: np.ndarray, b: np.ndarray, distance: str) -> np.ndarray:
    """(Na, Nb) distances between every row of ``a`` (Na, B) and every row of ``b`` (Nb, B)."""
    _check(distance)
    if distance == 'hamming':
        wa, wb = _words(a), _words(b)
        out = np.zeros((len(a), len(b)), np.int32)
        for k in range(wa.shape[1]):
            out += np.bitwise_count(wa[:, None, k] ^ wb[None, :, k])
        return out.astype(np.float32)
    a, b = a.astype(np.float32), b.astype(np.float32)
    sq = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * (a @ b.T)
    return np.sqrt(np.maximum(sq, 0.0))


def match_mutual(a: np.ndarray, b: np.ndarray, distance: str, ratio: float = 0.8,
                 max_distance: float = np.inf, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Mutual nearest-neighbour matches of descriptor sets ``a`` (Na, B) and ``b`` (Nb, B).

    A pair ``(i, j)`` is kept when ``j`` is the nearest row of ``b`` to ``a[i]`` and ``i`` the nearest of ``a`` to
    ``b[j]``, its distance is at most ``max_distance`` and below ``ratio`` times the distance from ``a[i]`` to its
    second-nearest row of ``b`` (``ratio >= 1`` disables the test). ``allowed`` (Na, Nb) bool, when given, limits
    the candidates (e.g. to pairs that satisfy a geometric constraint); nearest neighbours are taken among them.

    Returns:
        (M, 2) int64 index pairs ``(i, j)`` sorted by ``i``, and (M,) float32 distances.
    """
    if len(a) == 0 or len(b) == 0:
        return np.zeros((0, 2), np.int64), np.zeros(0, np.float32)
    dist = pairwise_distances(a, b, distance)
    if allowed is not None:
        dist = np.where(allowed, dist, np.inf).astype(np.float32)
    nn_b = dist.argmin(axis=1)
    nn_a = dist.argmin(axis=0)
    rows = np.arange(len(a))
    best = dist[rows, nn_b]
    keep = (nn_a[nn_b] == rows) & (best <= max_distance) & np.isfinite(best)
    if ratio < 1.0 and len(b) > 1:
        second = np.partition(dist, 1, axis=1)[:, 1]
        keep &= best < ratio * second
    return np.stack([rows[keep], nn_b[keep]], axis=1), best[keep]


def _candidate_pairs(projected: np.ndarray, radius: np.ndarray, keypoints: np.ndarray,
                     groups: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Pairs ``(i, j)`` with ``|projected[i] - keypoints[j]| <= radius[i]``, i and j drawn from the same group.

    Each group is (point indices, keypoint indices); one KD-tree query per group keeps the candidate lists short.
    """
    found_i, found_j = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
    for rows, cols in groups:
        if len(rows) == 0 or len(cols) == 0:
            continue
        pairs = cKDTree(projected[rows]).sparse_distance_matrix(cKDTree(keypoints[cols]), float(radius[rows].max()),
                                                                output_type='ndarray')
        i, j = rows[pairs['i']], cols[pairs['j']]
        keep = pairs['v'] <= radius[i]
        found_i.append(i[keep])
        found_j.append(j[keep])
    return np.concatenate(found_i), np.concatenate(found_j)


def search_by_projection(projected: np.ndarray, descriptors: np.ndarray, radius: np.ndarray | float,
                         keypoints: np.ndarray, kp_descriptors: np.ndarray, distance: str, max_distance: float,
                         ratio: float = 1.0, level_range: tuple[np.ndarray, np.ndarray] | None = None,
                         kp_levels: np.ndarray | None = None,
                         available: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Match projected map points to the keypoints near their projections (ORB-SLAM ``SearchByProjection``).

    For each projected point ``m``, the candidates are the keypoints within ``radius[m]`` pixels of
    ``projected[m]`` (and, with ``level_range``, of pyramid level ``lo[m] <= kp_levels <= hi[m]``; with
    ``available``, only the keypoints marked True). The nearest candidate in descriptor space is accepted when its
    distance is at most ``max_distance`` and below ``ratio`` times that of the second-nearest candidate. A keypoint
    goes to at most one point: the one with the smallest descriptor distance.

    Args:
        projected: (M, 2) pixel positions of the projected points; descriptors: (M, B) their descriptors.
        radius: (M,) or scalar search radius in pixels.
        keypoints: (N, 2) keypoint pixels; kp_descriptors: (N, B) their descriptors.
        level_range: ((M,), (M,)) inclusive level bounds per point; needs ``kp_levels`` (N,).
        available: (N,) bool, keypoints that may be matched.
    Returns:
        (M,) int64 index of the matched keypoint or -1, and (M,) float32 descriptor distances (inf where none).
    """
    m = len(projected)
    match = np.full(m, -1, np.int64)
    dist_out = np.full(m, np.inf, np.float32)
    radius = np.broadcast_to(np.asarray(radius, dtype=np.float64), (m,))
    cols = np.arange(len(keypoints)) if available is None else np.flatnonzero(available)
    if level_range is None:
        groups = [(np.arange(m), cols)]
    else:
        lo, hi = (np.asarray(b, dtype=np.int64) for b in level_range)
        key = (lo - lo.min(initial=0)) * 1024 + (hi - lo)
        levels = np.asarray(kp_levels)[cols]
        groups = []
        for k in np.unique(key):
            rows = np.flatnonzero(key == k)
            groups.append((rows, cols[(levels >= lo[rows[0]]) & (levels <= hi[rows[0]])]))
    i, j = _candidate_pairs(np.asarray(projected, dtype=np.float64), radius, keypoints, groups)
    if len(i) == 0:
        return match, dist_out
    d = row_distances(descriptors[i], kp_descriptors[j], distance)
    order = np.lexsort((d, i))
    i, j, d = i[order], j[order], d[order]
    first = np.flatnonzero(np.r_[True, i[1:] != i[:-1]])
    has_second = np.r_[first[1:], len(i)] - first > 1
    second = np.where(has_second, d[np.minimum(first + 1, len(d) - 1)], np.inf)
    best_i, best_j, best_d = i[first], j[first], d[first]
    ok = (best_d <= max_distance) & ((best_d < ratio * second) | (ratio >= 1.0))
    best_i, best_j, best_d = best_i[ok], best_j[ok], best_d[ok]
    order = np.argsort(best_d, kind='stable')
    _, unique = np.unique(best_j[order], return_index=True)
    winners = order[unique]
    match[best_i[winners]] = best_j[winners]
    dist_out[best_i[winners]] = best_d[winners]
    return match, dist_out
