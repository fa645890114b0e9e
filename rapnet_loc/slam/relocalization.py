"""Relocalization of a frame against the map (ORB-SLAM2 ``Tracking::Relocalization``).

Candidate keyframes come from a function (``CandidateFn``): a place recognizer kept in step with the map
(``rapnet_loc.slam.keyframe_database.KeyFrameDatabase``), or ``keyframes_near`` a pose from outside. For each
candidate, its map points are matched to the frame by descriptor (mutual nearest neighbours), the pose comes from
``cv2.solvePnPRansac``, and pose optimisation plus a projection search of the candidate's points must leave enough
inliers.
"""
from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from rapnet_loc.features.matching import match_mutual, search_by_projection
from rapnet_loc.slam.camera import Camera
from rapnet_loc.slam.config import TrackingConfig
from rapnet_loc.slam.frame import Frame
from rapnet_loc.slam.map import KeyFrame, Map
from rapnet_loc.slam.optimizer import CHI2_MONO, optimize_frame

CandidateFn = Callable[[Map, Frame, int], list[KeyFrame]]


def keyframes_near(T_cw: np.ndarray, max_angle_deg: float) -> CandidateFn:
    """Candidates around a pose prior (4, 4) ``T_cw``: keyframes whose optical axis is within ``max_angle_deg`` of
    the prior's, nearest camera centre first."""
    center, axis = -T_cw[:3, :3].T @ T_cw[:3, 3], T_cw[2, :3]
    min_cos = np.cos(np.radians(max_angle_deg))

    def candidates(slam_map: Map, frame: Frame, n: int) -> list[KeyFrame]:
        kfs = [kf for kf in slam_map.keyframes.values() if kf.T_cw[2, :3] @ axis >= min_cos]
        return sorted(kfs, key=lambda kf: float(np.linalg.norm(kf.center - center)))[:n]

    return candidates


def _pnp_pose(points_w: np.ndarray, uv: np.ndarray, camera: Camera, sigma: np.ndarray,
              iterations: int) -> tuple[np.ndarray, np.ndarray] | None:
    """RANSAC PnP: (4, 4) T_cw and the (k,) inlier indices, or None."""
    ok, rvec, tvec, inliers = cv2.solvePnPRansac(
        points_w.astype(np.float64), uv.astype(np.float64), camera.K, None, iterationsCount=iterations,
        reprojectionError=float(np.sqrt(CHI2_MONO) * np.median(sigma)), confidence=0.99, flags=cv2.SOLVEPNP_EPNP)
    if not ok or inliers is None:
        return None
    T = np.eye(4)
    T[:3, :3] = cv2.Rodrigues(rvec)[0]
    T[:3, 3] = tvec.reshape(3)
    return T, inliers.reshape(-1)


def try_keyframe(frame: Frame, kf: KeyFrame, slam_map: Map, camera: Camera, cfg: TrackingConfig) -> bool:
    """Relocalize ``frame`` against one keyframe; on success ``frame`` holds the pose and its matches."""
    pts = slam_map.points
    kp_idx = np.flatnonzero(kf.point_ids >= 0)
    pids = kf.point_ids[kp_idx]
    feats = frame.features
    matches, _ = match_mutual(kf.frame.features.descriptors[kp_idx], feats.descriptors, feats.distance,
                              cfg.reloc_ratio, cfg.threshold('strict_distance', feats.distance))
    if len(matches) < cfg.reloc_min_matches:
        return False
    pids, kps = pids[matches[:, 0]], matches[:, 1]
    pnp = _pnp_pose(pts.positions[pids], frame.keypoints_un[kps], camera, feats.level_scales[kps],
                    cfg.reloc_pnp_iterations)
    if pnp is None or len(pnp[1]) < cfg.min_pose_inliers:
        return False
    frame.point_ids[:] = -1
    frame.T_cw = pnp[0]
    frame.point_ids[kps[pnp[1]]] = pids[pnp[1]]
    n_good = optimize_frame(frame, pts.positions, camera)
    if n_good < cfg.min_pose_inliers:
        return False
    if n_good < cfg.reloc_min_inliers:
        others = np.setdiff1d(kf.point_ids[kf.point_ids >= 0], frame.point_ids)
        others = others[~pts.bad[others]]
        points_c = pts.positions[others] @ frame.T_cw[:3, :3].T + frame.T_cw[:3, 3]
        front = points_c[:, 2] > 0
        others, points_c = others[front], points_c[front]
        uv = camera.project(points_c)
        match, _ = search_by_projection(uv, pts.descriptors[others], cfg.reloc_radius, frame.keypoints_un,
                                        feats.descriptors, feats.distance,
                                        cfg.threshold('max_distance', feats.distance),
                                        available=frame.point_ids < 0)
        found = match >= 0
        frame.point_ids[match[found]] = others[found]
        n_good = optimize_frame(frame, pts.positions, camera)
    return n_good >= cfg.reloc_min_inliers


def relocalize(frame: Frame, slam_map: Map, camera: Camera, cfg: TrackingConfig, candidates: CandidateFn) -> bool:
    """Try the candidate keyframes in order until one gives a pose with enough inliers.

    On success ``frame.T_cw`` and ``frame.point_ids`` (inlier matches) are set and True is returned; otherwise the
    frame has no matches and ``T_cw`` is None.
    """
    if len(frame) >= cfg.reloc_min_matches:
        for kf in candidates(slam_map, frame, cfg.reloc_candidates):
            if try_keyframe(frame, kf, slam_map, camera, cfg):
                return True
    frame.point_ids[:] = -1
    frame.T_cw = None
    return False
