"""New map points from two keyframes (ORB-SLAM2 ``LocalMapping::CreateNewMapPoints`` for RGB-D).

Keypoints of two keyframes that observe no map point are matched by descriptor under the epipolar constraint; each
match becomes a 3D point by linear triangulation (``cv2.triangulatePoints``) when the rays' parallax beats the
depth sensor's (its virtual stereo baseline), else from the measured depth of the keyframe that sees it with more
parallax, as ORB-SLAM2 does. A point is kept only when it lies in front of both cameras, reprojects within the
chi-square thresholds into both (with the right-image coordinate where there is depth), and its distances to the
two cameras agree with the two keypoints' pyramid levels.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from rapnet_loc.features.matching import match_mutual
from rapnet_loc.slam.camera import Camera
from rapnet_loc.slam.optimizer import chi2_thresholds, project_residuals

CHI2_EPIPOLAR = 3.84         # chi-square, 1 degree of freedom, 95 %
MAX_COS_PARALLAX = 0.9998    # rays closer than about 1.1 degrees are not triangulated
SCALE_TOLERANCE = 1.5        # times the scale factor: slack on the distance ratio against the level ratio


@dataclass
class View:
    """One keyframe's side of a triangulation.

    Attributes:
        T_cw: (4, 4) world-to-camera pose.
        uv: (N, 2) undistorted keypoints; u_right: (N,) virtual right coordinate (NaN without depth);
        depth: (N,) metres (0 without); levels: (N,) pyramid levels; descriptors: (N, B).
    """

    T_cw: np.ndarray
    uv: np.ndarray
    u_right: np.ndarray
    depth: np.ndarray
    levels: np.ndarray
    descriptors: np.ndarray

    @property
    def center(self) -> np.ndarray:
        """(3,) camera centre in the world."""
        return -self.T_cw[:3, :3].T @ self.T_cw[:3, 3]


def fundamental(T1_cw: np.ndarray, T2_cw: np.ndarray, K: np.ndarray) -> np.ndarray:
    """(3, 3) ``F21`` with ``x2^T F21 x1 = 0`` for homogeneous pixels ``x1`` of camera 1 and ``x2`` of camera 2."""
    R21 = T2_cw[:3, :3] @ T1_cw[:3, :3].T
    t = T2_cw[:3, 3] - R21 @ T1_cw[:3, 3]
    t_x = np.array([[0.0, -t[2], t[1]], [t[2], 0.0, -t[0]], [-t[1], t[0], 0.0]])
    K_inv = np.linalg.inv(K)
    return K_inv.T @ t_x @ R21 @ K_inv


def epipolar_match(v1: View, v2: View, camera: Camera, distance: str, max_distance: float, ratio: float,
                   scale_factor: float) -> np.ndarray:
    """(M, 2) keypoint pairs ``(i, j)`` of ``v1`` and ``v2``: mutual nearest neighbours (``match_mutual``) among
    the pairs within the epipolar chi-square test at ``v2``'s keypoint scale."""
    F21 = fundamental(v1.T_cw, v2.T_cw, camera.K)
    lines = np.c_[v1.uv, np.ones(len(v1.uv))] @ F21.T                            # (N1, 3) lines in image 2
    num = lines[:, :2] @ v2.uv.T + lines[:, 2:]                                  # (N1, N2)
    sq = num * num / np.maximum((lines[:, :2] ** 2).sum(1, keepdims=True), 1e-12)
    sigma2 = (scale_factor ** v2.levels.astype(np.float64)) ** 2
    pairs, _ = match_mutual(v1.descriptors, v2.descriptors, distance, ratio, max_distance,
                            allowed=sq <= CHI2_EPIPOLAR * sigma2)
    return pairs


def _points(v1: View, v2: View, i: np.ndarray, j: np.ndarray, camera: Camera) -> np.ndarray:
    """(M, 3) world points of the pairs (``i``, ``j``), NaN where there is too little parallax to place them."""
    K = camera.K
    rays1, rays2 = (camera.backproject(v.uv[k], np.ones(len(k))) @ v.T_cw[:3, :3] for v, k in ((v1, i), (v2, j)))
    cos_rays = (rays1 * rays2).sum(1) / (np.linalg.norm(rays1, axis=1) * np.linalg.norm(rays2, axis=1))
    baseline = camera.bf / camera.fx
    cos_depth1 = np.where(v1.depth[i] > 0, np.cos(2 * np.arctan2(baseline / 2, v1.depth[i])), 2.0)
    cos_depth2 = np.where(v2.depth[j] > 0, np.cos(2 * np.arctan2(baseline / 2, v2.depth[j])), 2.0)
    cos_depth = np.minimum(cos_depth1, cos_depth2)
    out = np.full((len(i), 3), np.nan)
    tri = (cos_rays > 0) & (cos_rays < cos_depth) & ((cos_depth < 2.0) | (cos_rays < MAX_COS_PARALLAX))
    if tri.any():
        X = cv2.triangulatePoints(K @ v1.T_cw[:3], K @ v2.T_cw[:3], v1.uv[i[tri]].T, v2.uv[j[tri]].T)
        with np.errstate(divide='ignore', invalid='ignore'):
            out[tri] = (X[:3] / X[3]).T
    for view, k, use in ((v1, i, ~tri & (cos_depth1 < 2.0) & (cos_depth1 <= cos_depth2)),
                         (v2, j, ~tri & (cos_depth2 < 2.0) & (cos_depth2 < cos_depth1))):
        if use.any():
            z = view.depth[k[use]]
            p_c = camera.backproject(view.uv[k[use]], z)
            out[use] = (p_c - view.T_cw[:3, 3]) @ view.T_cw[:3, :3]
    return out


def reprojects(view: View, points_w: np.ndarray, k: np.ndarray, camera: Camera,
                scale_factor: float) -> np.ndarray:
    """(M,) bool: world points (M, 3) in front of ``view`` that reproject onto its keypoints ``k`` (M,) within the
    chi-square thresholds."""
    points_c = points_w @ view.T_cw[:3, :3].T + view.T_cw[:3, 3]
    front = points_c[:, 2] > 0
    ok = np.zeros(len(k), bool)
    u_right = view.u_right[k[front]]
    error, _ = project_residuals(points_c[front], view.uv[k[front]], u_right, camera, with_jacobian=False)
    sigma2 = (scale_factor ** view.levels[k[front]].astype(np.float64)) ** 2
    ok[front] = (error * error).sum(1) <= sigma2 * chi2_thresholds(u_right)
    return ok


def triangulate(v1: View, v2: View, pairs: np.ndarray, camera: Camera, scale_factor: float) -> tuple[np.ndarray,
                                                                                                     np.ndarray]:
    """World points of matched keypoint ``pairs`` (M, 2) of ``v1`` and ``v2`` that pass every check of the module
    doc: (K,) bool over the pairs kept and their (K, 3) positions."""
    i, j = pairs[:, 0], pairs[:, 1]
    points = _points(v1, v2, i, j, camera)
    ok = np.isfinite(points).all(1)
    ok[ok] = reprojects(v1, points[ok], i[ok], camera, scale_factor) & reprojects(v2, points[ok], j[ok], camera,
                                                                                  scale_factor)
    d1 = np.linalg.norm(points[ok] - v1.center, axis=1)
    d2 = np.linalg.norm(points[ok] - v2.center, axis=1)
    ratio_dist = d2 / np.maximum(d1, 1e-12)
    ratio_octave = scale_factor ** (v1.levels[i[ok]].astype(np.float64) - v2.levels[j[ok]])
    slack = SCALE_TOLERANCE * scale_factor
    ok[ok] = (d1 > 0) & (d2 > 0) & (ratio_dist * slack >= ratio_octave) & (ratio_dist <= ratio_octave * slack)
    return ok, points[ok]
