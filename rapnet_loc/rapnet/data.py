"""Training data from posed RGB-D frames in the 7-Scenes layout: small images, registered depth, pixel
correspondences between two frames, and place labels ("locations") along the sequence.

A folder may hold ``color-intrinsics.txt`` (the colour camera's K; default: 7-Scenes' ``COLOR_K``) and
``camera-intrinsics.txt`` (the depth camera's; default: the colour K), read by
``rapnet_loc.io.sevenscenes.SevenScenesFolder``. Synthetic sequences are written in this layout by
``rapnet_loc.synth.frames``.

Pixel positions are (i, j) = (row, column) of the training image; ``K`` are the colour intrinsics at its size.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rapnet_loc.errors import DatasetError
from rapnet_loc.geometry import scaled_intrinsics
from rapnet_loc.io.sevenscenes import SevenScenesFolder
from rapnet_loc.rapnet.preprocess import normalize, resize_max_edge


@dataclass
class TrainFrame:
    """One training frame: ``image`` (1, 3, H, W) float32 ("torch" preprocessing), ``depth`` (H, W) float32
    metres at the colour pixels (0 invalid), ``K`` (3, 3) and camera-to-world ``T_wc`` (4, 4)."""

    index: int
    image: np.ndarray
    depth: np.ndarray
    K: np.ndarray
    T_wc: np.ndarray


def register_depth(depth: np.ndarray, K_depth: np.ndarray, K_color: np.ndarray, shape: tuple[int, int],
                   scale: float) -> np.ndarray:
    """Depth at the pixel centres of a colour image shrunk by ``scale`` to ``shape`` (H, W).

    The depth camera is taken to share the colour camera's optical centre and axes (7-Scenes' unregistered
    Kinect images): colour pixel -> ray -> nearest depth pixel.
    """
    h, w = shape
    u = ((np.arange(w) + 0.5) * scale - 0.5 - K_color[0, 2]) / K_color[0, 0]
    v = ((np.arange(h) + 0.5) * scale - 0.5 - K_color[1, 2]) / K_color[1, 1]
    col = np.rint(K_depth[0, 0] * u + K_depth[0, 2]).astype(np.int64)
    row = np.rint(K_depth[1, 1] * v + K_depth[1, 2]).astype(np.int64)
    ok_c, ok_r = (col >= 0) & (col < depth.shape[1]), (row >= 0) & (row < depth.shape[0])
    out = depth[np.clip(row, 0, depth.shape[0] - 1)[:, None], np.clip(col, 0, depth.shape[1] - 1)[None, :]]
    return np.where(ok_r[:, None] & ok_c[None, :], out, 0.0).astype(np.float32)


def load_frames(path: str | Path, first: int, last: int, stride: int, max_edge: int) -> list[TrainFrame]:
    """Every ``stride``-th frame of 7-Scenes frames ``first``..``last``, shrunk to ``max_edge``."""
    folder = SevenScenesFolder(path, first, last)
    _, poses = folder.poses()
    frames = []
    for n, frame in enumerate(folder):
        if n % stride:
            continue
        small = resize_max_edge(frame.color, max_edge)
        scale = frame.color.shape[1] / small.shape[1]
        K = scaled_intrinsics(folder.K, scale)
        depth = register_depth(frame.depth, folder.K_depth, folder.K, small.shape[:2], scale)
        frames.append(TrainFrame(frame.index, normalize(small, 'torch'), depth, K, poses[n]))
    if len(frames) < 2:
        raise DatasetError(f'need at least 2 training frames from {path} (frames {first}..{last}, stride {stride})')
    return frames


def reproject(xy: np.ndarray, depth: np.ndarray, K_a: np.ndarray, K_b: np.ndarray, T_wc_a: np.ndarray,
              T_wc_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pixels (N, 2) ``(x, y)`` of camera a with depths (N,) metres (0: none) seen by camera b.

    Returns:
        (N, 2) pixel positions in b and (N,) depths in b; the depth is 0 where a had none or the point is not in
        front of b (the position is then meaningless).
    """
    z = np.asarray(depth, dtype=np.float64)
    rays = (xy - K_a[:2, 2]) / np.diag(K_a)[:2]
    pts = np.stack([rays[:, 0] * z, rays[:, 1] * z, z, np.ones_like(z)])
    pb = (np.linalg.inv(T_wc_b) @ T_wc_a @ pts)[:3]
    front = (z > 0) & (pb[2] > 0)
    with np.errstate(divide='ignore', invalid='ignore'):
        uv = (K_b[:2, :2] @ (pb[:2] / np.where(front, pb[2], 1.0)) + K_b[:2, 2:]).T
    return uv, np.where(front, pb[2], 0.0)


def correspondences(a: TrainFrame, b: TrainFrame, n: int, rng: np.random.Generator,
                    depth_tolerance: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Up to ``n`` pixels of ``a`` with depth, and where they fall in ``b``.

    A pixel counts when its 3-D point projects inside ``b`` in front of the camera, and ``b``'s depth there
    agrees with the point's within ``depth_tolerance`` (relative; rejects occlusions).

    Returns:
        (M, 2) int64 positions in ``a`` and (M, 2) float64 positions in ``b``, M <= n.
    """
    h, w = a.depth.shape
    valid = np.flatnonzero(a.depth.ravel() > 0)
    pick = rng.choice(valid, min(len(valid), 4 * n), replace=False) if len(valid) else valid
    i, j = np.divmod(pick, w)
    xy, z = reproject(np.stack([j, i], 1).astype(np.float64), a.depth[i, j], a.K, b.K, a.T_wc, b.T_wc)
    jb, ib = xy.T
    ok = (z > 0) & (ib >= 0) & (ib <= h - 1) & (jb >= 0) & (jb <= w - 1)
    zb = np.zeros_like(z)
    zb[ok] = b.depth[np.rint(ib[ok]).astype(np.int64), np.rint(jb[ok]).astype(np.int64)]
    ok &= (zb > 0) & (np.abs(zb - z) < depth_tolerance * z)
    keep = np.flatnonzero(ok)[:n]
    return np.stack([i[keep], j[keep]], 1), np.stack([ib[keep], jb[keep]], 1)


def crop_pair(a: TrainFrame, b: TrainFrame, pos1: np.ndarray, pos2: np.ndarray, size: int, n: int,
              rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Windows of at most ``size`` x ``size`` pixels of both images (as D2-Net trains), each centred as far as the
    borders allow on the two ends of one random correspondence, and the correspondences inside both windows.

    Args:
        a, b: frames of the same size; pos1 (M, 2) int64 and pos2 (M, 2) float: ``correspondences(a, b)``, M >= 1.
    Returns:
        The windows of ``a.image`` and ``b.image``, (1, 3, h, w) each, up to ``n`` correspondences as (K, 2)
        int64 positions in window a and (K, 2) float64 positions in window b, and the windows' (row, column)
        corners in their images, (2, 2) int64.
    """
    h, w = a.depth.shape
    window = np.array([min(size, h), min(size, w)])
    k = int(rng.integers(len(pos1)))
    o1, o2 = (np.clip(np.rint(c - window / 2).astype(np.int64), 0, [h, w] - window) for c in (pos1[k], pos2[k]))
    p1, p2 = pos1 - o1, pos2 - o2
    keep = np.flatnonzero((p1 >= 0).all(1) & (p1 < window).all(1) & (p2 >= 0).all(1) & (p2 <= window - 1).all(1))[:n]
    crop1 = a.image[..., o1[0]:o1[0] + window[0], o1[1]:o1[1] + window[1]]
    crop2 = b.image[..., o2[0]:o2[0] + window[0], o2[1]:o2[1] + window[1]]
    return crop1, crop2, p1[keep], p2[keep], np.stack([o1, o2])


def location_labels(T_wc: np.ndarray, max_distance: float, max_angle_deg: float) -> np.ndarray:
    """Place label of each pose of a sequence, walked in order.

    A frame joins the nearest existing location whose first frame is within ``max_distance`` metres and
    ``max_angle_deg`` degrees of rotation of it; otherwise it starts a new location.

    Args:
        T_wc: (N, 4, 4) camera-to-world poses.
    Returns:
        (N,) int64 labels 0, 1, ... in order of appearance.
    """
    refs: list[np.ndarray] = []
    labels = np.empty(len(T_wc), np.int64)
    cos_max = np.cos(np.radians(max_angle_deg))
    for n, T in enumerate(T_wc):
        best, best_d = -1, np.inf
        for k, ref in enumerate(refs):
            d = np.linalg.norm(T[:3, 3] - ref[:3, 3])
            cos = (np.trace(ref[:3, :3].T @ T[:3, :3]) - 1) / 2
            if d < max_distance and cos > cos_max and d < best_d:
                best, best_d = k, d
        if best < 0:
            best = len(refs)
            refs.append(T)
        labels[n] = best
    return labels


def sample_tuple(labels: np.ndarray, rng: np.random.Generator, negatives: int = 4, min_gap: int = 1) -> np.ndarray:
    """Indices (anchor, positive, negative_1..negative_n): anchor and positive share a location and are at least
    ``min_gap`` frames apart in ``labels``' order (time, within a source), negatives are of other locations.

    Raises:
        DatasetError: no location with two frames that far apart, or fewer than ``negatives`` frames elsewhere.
    """
    index = np.arange(len(labels))
    usable = [loc for loc in np.unique(labels)
              if np.ptp(index[labels == loc]) >= min_gap and np.sum(labels != loc) >= negatives]
    if not usable:
        raise DatasetError(f'cannot form (anchor, positive, {negatives} negatives) tuples from {len(labels)} frames '
                           f'in {len(np.unique(labels))} locations with anchor and positive {min_gap} frames apart: '
                           f'use more frames, revisits of the same places or tighter location thresholds')
    loc = usable[rng.integers(len(usable))]
    same, other = index[labels == loc], index[labels != loc]
    if min_gap <= 1:       # any two frames (the draws of runs before min_gap existed)
        pair = rng.choice(same, 2, replace=False)
    else:
        anchor = rng.choice(same[np.abs(same[:, None] - same[None, :]).max(axis=1) >= min_gap])
        pair = [anchor, rng.choice(same[np.abs(same - anchor) >= min_gap])]
    return np.concatenate([pair, rng.choice(other, negatives, replace=False)])
