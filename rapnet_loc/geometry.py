"""Rigid-body helpers shared by the whole suite.

Conventions (ROS):
- quaternions are ``[x, y, z, w]``;
- a pose ``T_a_b`` (4x4) maps points from frame ``b`` into frame ``a``, i.e. it is the pose of ``b`` in ``a``;
- positions are metres, angles radians unless a name says ``_deg``.
"""
from __future__ import annotations

from collections import deque

import numpy as np
from scipy.spatial.transform import Rotation

from rapnet_loc.errors import TopicError


def quat_to_matrix(q: np.ndarray) -> np.ndarray:
    """Rotation matrices of quaternions.

    Args:
        q: (..., 4) quaternions ``[x, y, z, w]``; normalised here.
    Returns:
        (..., 3, 3) rotation matrices.
    """
    q = np.asarray(q, dtype=np.float64)
    flat = q.reshape(-1, 4)
    mats = Rotation.from_quat(flat).as_matrix()
    return mats.reshape(q.shape[:-1] + (3, 3))


def matrix_to_quat(m: np.ndarray) -> np.ndarray:
    """Unit quaternions of rotation matrices, canonical sign ``w >= 0``.

    The sign matters to the official OpenLORIS evaluator, whose slerp is not sign-symmetric: it receives
    ground-truth quaternions with ``w >= 0`` (from ``quaternion_from_matrix``), and so do we.

    Args:
        m: (..., 3, 3) or (..., 4, 4) rotation (or pose) matrices.
    Returns:
        (..., 4) quaternions ``[x, y, z, w]``.
    """
    m = np.asarray(m, dtype=np.float64)
    rot = Rotation.from_matrix(m[..., :3, :3].reshape(-1, 3, 3))
    return rot.as_quat(canonical=True).reshape(m.shape[:-2] + (4,))


def pose_matrix(t: np.ndarray, q: np.ndarray) -> np.ndarray:
    """4x4 homogeneous poses from translations (..., 3) and quaternions (..., 4) -> (..., 4, 4)."""
    t = np.asarray(t, dtype=np.float64)
    rot = quat_to_matrix(q)
    out = np.zeros(rot.shape[:-2] + (4, 4))
    out[..., :3, :3] = rot
    out[..., :3, 3] = t
    out[..., 3, 3] = 1.0
    return out


def pose_parts(m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Translations (..., 3) and ``tf``-convention quaternions (..., 4) of poses (..., 4, 4)."""
    m = np.asarray(m, dtype=np.float64)
    return m[..., :3, 3].copy(), matrix_to_quat(m)


def invert(m: np.ndarray) -> np.ndarray:
    """Inverse of rigid poses (..., 4, 4) without a general matrix inverse."""
    m = np.asarray(m, dtype=np.float64)
    rt = np.swapaxes(m[..., :3, :3], -1, -2)
    out = np.zeros_like(m)
    out[..., :3, :3] = rt
    out[..., :3, 3] = -np.einsum('...ij,...j->...i', rt, m[..., :3, 3])
    out[..., 3, 3] = 1.0
    return out


def rotation_angle(r: np.ndarray) -> np.ndarray:
    """Rotation angle in [0, pi] of rotation matrices (..., 3, 3), accurate near zero."""
    r = np.asarray(r, dtype=np.float64)
    return Rotation.from_matrix(r.reshape(-1, 3, 3)).magnitude().reshape(r.shape[:-2])


def pose_difference(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Shift (metres) and turn (degrees) between two (4, 4) rigid transforms: of ``inv(a) @ b``, which for
    camera-to-world poses is the distance between the camera centres and the angle between the orientations."""
    step = invert(a) @ b
    return float(np.linalg.norm(step[:3, 3])), float(np.degrees(rotation_angle(step[:3, :3])))


def yaw_quat(yaw: np.ndarray) -> np.ndarray:
    """Quaternions (..., 4) of rotations by ``yaw`` (...) radians about +z."""
    yaw = np.asarray(yaw, dtype=np.float64)
    q = np.zeros(yaw.shape + (4,))
    q[..., 2] = np.sin(yaw / 2.0)
    q[..., 3] = np.cos(yaw / 2.0)
    return q


def find_chain(transforms: dict[tuple[str, str], np.ndarray], parent: str, child: str) -> np.ndarray:
    """(4, 4) pose of ``child`` in ``parent`` composed from static transforms ``{(parent, child): T}`` (a TF tree
    such as ``/tf_static``'s), walking edges in either direction; TopicError when no chain connects them."""
    edges: dict[str, list[tuple[str, np.ndarray]]] = {}
    for (a, b), T in transforms.items():
        edges.setdefault(a, []).append((b, T))
        edges.setdefault(b, []).append((a, invert(T)))
    queue, seen = deque([(parent, np.eye(4))]), {parent}
    while queue:
        frame, T = queue.popleft()
        if frame == child:
            return T
        for nxt, step in edges.get(frame, []):
            if nxt not in seen:
                seen.add(nxt)
                queue.append((nxt, T @ step))
    raise TopicError(f'no chain of static transforms from {parent!r} to {child!r}; '
                     f'frames known: {", ".join(sorted(edges)) or "none"}')


def scaled_intrinsics(K: np.ndarray, scale: float) -> np.ndarray:
    """(3, 3) intrinsics of an image whose pixels are ``scale`` times those of ``K``'s image (pixel centres at
    integer coordinates: a pixel's centre x maps to (x + 0.5) / scale - 0.5)."""
    out = np.diag([1 / scale, 1 / scale, 1.0]) @ np.asarray(K, np.float64)
    out[:2, 2] += 0.5 / scale - 0.5
    return out
