"""Local mapping (ORB-SLAM2 ``LocalMapping``), run synchronously after each new keyframe.

Steps: refresh the descriptors, normals and distance ranges of the points the keyframe observes; update its
covisibility edges; cull recently created points that tracking rarely finds or that no second keyframe observes;
local bundle adjustment of the keyframe, its best covisible keyframes and the points they see, with the other
keyframes that see those points held fixed (as is keyframe 0, which anchors the map).
"""
from __future__ import annotations

import numpy as np

from rapnet_loc.slam.camera import Camera
from rapnet_loc.slam.config import LocalMappingConfig
from rapnet_loc.slam.map import KeyFrame, Map
from rapnet_loc.slam.optimizer import BundleProblem, bundle_adjust


class LocalMapping:
    """Maintains ``slam_map`` around each new keyframe.

    Args:
        slam_map: the map.
        camera: the colour camera.
        cfg: culling and bundle-adjustment settings.
        distance: descriptor metric of the features (``'hamming'`` or ``'l2'``).
    """

    def __init__(self, slam_map: Map, camera: Camera, cfg: LocalMappingConfig, distance: str):
        self.map = slam_map
        self.camera = camera
        self.cfg = cfg
        self.distance = distance
        self.recent = np.zeros(0, np.int64)

    def process(self, kf: KeyFrame, new_ids: np.ndarray) -> None:
        """Integrate keyframe ``kf``, which created the points ``new_ids``."""
        observed = kf.point_ids[kf.point_ids >= 0]
        old = np.setdiff1d(observed, new_ids)
        self.map.update_geometry(old)
        self.map.update_descriptors(old, self.distance)
        self.map.update_connections(kf)
        self._cull_points(kf)
        self.recent = np.concatenate([self.recent, new_ids])
        if self.cfg.ba_window > 0 and len(self.map.keyframes) > 1:
            self._local_bundle_adjustment(kf)

    def _cull_points(self, kf: KeyFrame) -> None:
        """ORB-SLAM2 ``MapPointCulling`` of the recently created points: a point is culled when tracking found it
        in fewer than ``cull_found_ratio`` of the frames that saw it, or when ``cull_min_keyframes`` keyframes
        after its creation it is still observed by a single keyframe; points older than that are kept for good."""
        pts = self.map.points
        ids = self.recent[~pts.bad[self.recent]]
        age = kf.id - pts.first_kf[ids]
        n_obs = pts.n_obs[ids]
        ratio = pts.found[ids] / np.maximum(pts.visible[ids], 1)
        cull = (ratio < self.cfg.cull_found_ratio) | ((age >= self.cfg.cull_min_keyframes) & (n_obs <= 1))
        self.map.erase_points(ids[cull])
        self.recent = ids[~cull & (age <= self.cfg.cull_min_keyframes)]

    def _local_bundle_adjustment(self, kf: KeyFrame) -> None:
        """Refine ``kf``, its ``ba_window - 1`` best covisible keyframes and the points they see; observations that
        fail the chi-square test afterwards are erased. Keyframes outside the window that see the points are held
        fixed, and so is keyframe 0; when there is none, the window's least covisible keyframe is. Points seen by a
        single keyframe are left out: they carry no information on the poses."""
        slam_map, pts = self.map, self.map.points
        window = [k for k in [kf.id, *slam_map.covisible(kf.id, self.cfg.ba_window - 1)] if k != 0]
        ids = np.unique(np.concatenate([slam_map.keyframes[k].point_ids for k in window]))
        ids = ids[ids >= 0]
        ids = ids[~pts.bad[ids]]
        ids = ids[pts.n_obs[ids] > 1]
        pid, kf_ids, kp = slam_map.observation_arrays(ids)
        if len(pid) == 0:
            return
        fixed = sorted(set(kf_ids.tolist()) - set(window))
        if not fixed:
            fixed, window = window[-1:], window[:-1]
        order = window + fixed
        slot = {k: i for i, k in enumerate(order)}
        kf_index = np.array([slot[k] for k in kf_ids.tolist()], np.int64)
        frames = [slam_map.keyframes[k].frame for k in kf_ids.tolist()]
        uv = np.array([f.keypoints_un[i] for f, i in zip(frames, kp.tolist())]).reshape(-1, 2)
        u_right = np.array([f.u_right[i] for f, i in zip(frames, kp.tolist())], np.float64)
        inv_sigma2 = np.array([f.inv_sigma2[i] for f, i in zip(frames, kp.tolist())], np.float64)
        problem = BundleProblem(np.stack([slam_map.keyframes[k].T_cw for k in order]), len(window),
                                pts.positions[ids], kf_index, np.searchsorted(ids, pid), uv, u_right, inv_sigma2)
        poses, points, inliers = bundle_adjust(problem, self.camera, self.cfg.ba_iterations)
        for k, T in zip(window, poses[:len(window)]):
            slam_map.keyframes[k].T_cw = T
        pts.positions[ids] = points
        slam_map.erase_observations(pid[~inliers], kf_ids[~inliers])
        slam_map.update_geometry(ids[~pts.bad[ids]])
