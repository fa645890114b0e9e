"""Per-image training targets of landmark voting (VS-Net): which surface patch each pixel sees, and the unit
direction from each pixel to the image of its patch's landmark.

Pixel positions are (x, y) = (column, row), pixel (0, 0)'s centre at (0, 0) as in ``K``; ``K`` (3, 3) are the
intrinsics of the image the maps are for and ``T_wc`` (4, 4) its camera-to-world pose. Landmarks and patches come
from ``rapnet_loc.landmarks.surface``.
"""
from __future__ import annotations

import numpy as np

from rapnet_loc.landmarks.surface import SceneLandmarks


def _to_camera(points: np.ndarray, T_wc: np.ndarray) -> np.ndarray:
    """(M, 3) camera-frame coordinates of (M, 3) world points."""
    T_wc = np.asarray(T_wc, dtype=np.float64)
    return np.einsum('ni,ij->nj', np.asarray(points, dtype=np.float64) - T_wc[:3, 3], T_wc[:3, :3])


def landmark_projections(landmarks_xyz: np.ndarray, K: np.ndarray, T_wc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where the camera sees each landmark.

    Args:
        landmarks_xyz: (N, 3) world points.
    Returns:
        (N, 2) float64 pixel positions (x, y), which may lie outside the image, and (N,) float64 depths; where the
        depth is <= 0 (behind the camera) the position is meaningless (0).
    """
    pc = _to_camera(np.reshape(landmarks_xyz, (-1, 3)), T_wc)
    z = pc[:, 2]
    front = z > 0
    uv = np.zeros((len(pc), 2))
    uv[front] = pc[front, :2] / z[front, None] * np.diag(K)[:2] + K[:2, 2]
    return uv, z


def render_labels(landmarks: SceneLandmarks, K: np.ndarray, T_wc: np.ndarray, shape: tuple[int, int],
                  max_half_width: float = 8.0) -> tuple[np.ndarray, np.ndarray]:
    """Patch label and depth of the surface the camera sees at each pixel, by z-buffered point splatting.

    Every surface point in front of the camera (those of dropped patches too: they occlude, but render as label
    0) covers the pixels within a square of half-width ``max(0.5, 0.5 * voxel * f / z)`` pixels (at most
    ``max_half_width``) around its projection, so that a surface sampled every ``voxel`` metres has no holes;
    the nearest point wins each pixel.

    Args:
        shape: (H, W) of the image.
    Returns:
        (H, W) int32 labels (patch id; 0 = no geometry or a dropped patch) and (H, W) float32 depth in metres
        of the winning point (0 where no point falls).
    """
    h, w = shape
    pc = _to_camera(landmarks.points, T_wc)
    z = pc[:, 2]
    front = np.flatnonzero(z > 1e-6)
    front = front[np.argsort(z[front], kind='stable')]  # nearest first
    z = z[front]
    centre = pc[front, :2] / z[:, None] * np.diag(K)[:2] + K[:2, 2]
    half = np.clip(0.5 * landmarks.voxel * np.diag(K)[:2] / z[:, None], 0.5, max_half_width)
    lo = np.ceil(centre - half).astype(np.int64)
    hi = np.floor(centre + half).astype(np.int64)
    lo, hi = np.maximum(lo, 0), np.minimum(hi, [w - 1, h - 1])
    size = hi - lo + 1
    inside = np.flatnonzero((size > 0).all(axis=1))
    front, z, lo, size = front[inside], z[inside], lo[inside], size[inside]
    count = size[:, 0] * size[:, 1]
    point = np.repeat(np.arange(len(front)), count)
    offset = np.arange(len(point)) - np.repeat(np.cumsum(count) - count, count)
    dy, dx = np.divmod(offset, size[point, 0])
    pixel = (lo[point, 1] + dy) * w + lo[point, 0] + dx
    order = np.argsort(pixel, kind='stable')  # nearest first within each pixel
    first = np.ones(len(order), bool)
    first[1:] = pixel[order[1:]] != pixel[order[:-1]]
    win = order[first]
    labels = np.zeros(h * w, np.int32)
    depth = np.zeros(h * w, np.float32)
    labels[pixel[win]] = landmarks.patch[front[point[win]]]
    depth[pixel[win]] = z[point[win]]
    return labels.reshape(h, w), depth.reshape(h, w)


def direction_map(labels: np.ndarray, landmarks_xyz: np.ndarray, K: np.ndarray, T_wc: np.ndarray) -> np.ndarray:
    """Unit direction from each pixel to the projection of its patch's landmark.

    Args:
        labels: (H, W) patch ids (1..N; 0 = background), e.g. ``render_labels``.
        landmarks_xyz: (N, 3) world landmarks, row i for patch i + 1 (``SceneLandmarks.landmarks``).
    Returns:
        (H, W, 2) float32 unit vectors (dx, dy) in pixels towards the landmark's projection, which may lie outside
        the image; zero on background, where the landmark is behind the camera and at the pixel it projects onto
        (distance < 1e-6).
    """
    uv, z = landmark_projections(landmarks_xyz, K, T_wc)
    target = np.concatenate([np.zeros((1, 2)), uv])
    valid = np.concatenate([[False], z > 0])
    labels = np.asarray(labels)
    rows, cols = np.indices(labels.shape)
    d = target[labels] - np.stack([cols, rows], axis=-1)
    norm = np.linalg.norm(d, axis=-1, keepdims=True)
    ok = valid[labels][..., None] & (norm >= 1e-6)
    return np.where(ok, d / np.where(ok, norm, 1.0), 0.0).astype(np.float32)
