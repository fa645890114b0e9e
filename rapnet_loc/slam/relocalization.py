"""Relocalization of a frame against the map (ORB-SLAM2 ``Tracking::Relocalization``).

Candidate keyframes come from a function (``CandidateFn``): a place recognizer kept in step with the map
(``rapnet_loc.slam.keyframe_database.KeyFrameDatabase``), or ``keyframes_near`` a pose from outside. For each
candidate, its map points are matched to the frame by descriptor (mutual nearest neighbours), the pose comes from
``cv2.solvePnPRansac``, and pose optimisation plus a projection search of the candidate's points must leave enough
inliers. Last, the depths of the two views must agree (``depth_conflicts``): a pose from repeated or symmetric
structure (a table with its chairs seen from the other side) places each camera's surfaces where the other saw
free space.
"""
from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np
from scipy.spatial import cKDTree

from rapnet_loc.features.matching import match_mutual, search_by_projection
from rapnet_loc.geometry import invert
from rapnet_loc.slam.camera import Camera
from rapnet_loc.slam.config import TrackingConfig
from rapnet_loc.slam.frame import Frame
from rapnet_loc.slam.map import KeyFrame, Map
from rapnet_loc.slam.optimizer import CHI2_MONO, optimize_frame

CandidateFn = Callable[[Map, Frame, int], list[KeyFrame]]
PoseGate = Callable[[Frame, KeyFrame], bool]


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


def depth_conflicts(points_a: np.ndarray, T_ba: np.ndarray, frame_b: Frame, camera: Camera, radius: float,
                    tolerance: float) -> tuple[int, int]:
    """Depth agreement of what camera a measured with what camera b measured, ``T_ba`` (4, 4) taking a's frame to
    b's: points ``points_a`` (n, 3) in a's frame move into b's and meet the depths of ``frame_b``'s keypoints
    within ``radius`` pixels of their projections (the 8 nearest). A point agrees when one of those depths is
    within ``tolerance`` times its own; it violates free space when all of them are farther by more than that (b
    saw through where a saw a surface). A point with only nearer depths around it is hidden in b and counts as
    neither.

    Returns:
        (agree, violate) point counts.
    """
    points_b = points_a @ T_ba[:3, :3].T + T_ba[:3, 3]
    uv, visible = camera.project_visible(points_b)
    measured = frame_b.has_depth
    if not visible.any() or not measured.any():
        return 0, 0
    depth_b = frame_b.depth[measured]
    tree = cKDTree(frame_b.keypoints_un[measured])
    dist, idx = tree.query(uv[visible], k=min(8, len(depth_b)), distance_upper_bound=radius)
    found = np.isfinite(dist.reshape(int(visible.sum()), -1))
    d = np.where(found, depth_b[np.minimum(idx.reshape(found.shape), len(depth_b) - 1)], np.nan)
    z = points_b[visible, 2][:, None]
    agree = (found & (np.abs(d - z) <= tolerance * z)).any(axis=1)
    violate = found.any(axis=1) & (~found | (d > z * (1.0 + tolerance))).all(axis=1)
    return int(agree.sum()), int(violate.sum())


def depth_conflicts_both(frame_a: Frame, frame_b: Frame, T_ba: np.ndarray, camera: Camera,
                         cfg: TrackingConfig) -> tuple[int, int]:
    """``depth_conflicts`` both ways between two frames, ``T_ba`` (4, 4) taking ``frame_a``'s camera frame to
    ``frame_b``'s (a's measured points in b, b's in a; ``reloc_radius``, ``reloc_depth_tolerance``): the summed
    (agree, violate) counts."""
    a1, v1 = depth_conflicts(frame_a.points_c[frame_a.has_depth], T_ba, frame_b, camera, cfg.reloc_radius,
                             cfg.reloc_depth_tolerance)
    a2, v2 = depth_conflicts(frame_b.points_c[frame_b.has_depth], invert(T_ba), frame_a, camera, cfg.reloc_radius,
                             cfg.reloc_depth_tolerance)
    return a1 + a2, v1 + v2


def depths_agree(frame: Frame, kf: KeyFrame, camera: Camera, cfg: TrackingConfig) -> bool:
    """Whether ``frame`` at its pose and keyframe ``kf`` saw the same surfaces: ``depth_conflicts_both`` leaves at
    most ``reloc_max_violations`` of the compared points violating free space."""
    agree, violate = depth_conflicts_both(kf.frame, frame, frame.T_cw @ invert(kf.T_cw), camera, cfg)
    return violate <= cfg.reloc_max_violations * (agree + violate)


def try_keyframe(frame: Frame, kf: KeyFrame, slam_map: Map, camera: Camera, cfg: TrackingConfig) -> bool:
    """Relocalize ``frame`` against one keyframe; on success ``frame`` holds the pose and its matches."""
    pts = slam_map.points
    kp_idx = np.flatnonzero(kf.point_ids >= 0)
    pids = kf.point_ids[kp_idx]
    feats = frame.features
    matches, _ = match_mutual(kf.frame.features.descriptors[kp_idx], feats.descriptors, feats.distance,
                              cfg.threshold('reloc_ratio', feats.distance),
                              cfg.threshold('strict_distance', feats.distance))
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
    return n_good >= cfg.reloc_min_inliers and depths_agree(frame, kf, camera, cfg)


def relocalize(frame: Frame, slam_map: Map, camera: Camera, cfg: TrackingConfig, candidates: CandidateFn,
               gate: PoseGate | None = None) -> bool:
    """Try the candidate keyframes in order until one gives a pose with enough inliers (that ``gate``, when given,
    accepts for the frame and that candidate).

    On success ``frame.T_cw`` and ``frame.point_ids`` (inlier matches) are set and True is returned; otherwise the
    frame has no matches and ``T_cw`` is None.
    """
    if len(frame) >= cfg.reloc_min_matches:
        for kf in candidates(slam_map, frame, cfg.reloc_candidates):
            if try_keyframe(frame, kf, slam_map, camera, cfg) and (gate is None or gate(frame, kf)):
                return True
    frame.point_ids[:] = -1
    frame.T_cw = None
    return False
