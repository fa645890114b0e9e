"""Maps from known camera poses: the 3D model of structure-based localization, built from RGB-D keyframes.

Each keyframe (an RGB-D frame with its known camera pose) is matched to the map built so far by projection: the
map points that project into the image are searched near their projections at their predicted pyramid level
(``rapnet_loc.features.matching.search_by_projection``), and a match whose keypoint has a depth is kept only when
that depth agrees with the point's. Matched keypoints become new observations of their points (points seen by
several keyframes are merged, not duplicated); every other keypoint with depth becomes a new map point. Normals,
distance ranges, representative descriptors and covisibility are kept up to date as in local mapping. At the end
(``finish``) each point moves to the mean of the depth back-projections of all its observations, which averages
out depth noise and small pose errors. The poses are not changed: the map lives in the frame of the given poses
(e.g. the dataset's ground truth). The configuration's place recognizer indexes each keyframe as it is added (with
its image, which is not kept) and is fitted on all of them at the end.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rapnet_loc.features.base import create_extractor
from rapnet_loc.features.matching import search_by_projection
from rapnet_loc.geometry import invert, rotation_angle
from rapnet_loc.io.types import CameraInfo, RGBDFrame
from rapnet_loc.slam.camera import Camera
from rapnet_loc.slam.config import SlamConfig
from rapnet_loc.slam.frame import Frame
from rapnet_loc.slam.keyframe_database import KeyFrameDatabase
from rapnet_loc.slam.map import KeyFrame, Map
from rapnet_loc.vpr.base import create_recognizer


@dataclass
class KeyframePolicy:
    """When a posed frame becomes a keyframe: the first one does, then any frame ``every`` frames after the last
    keyframe (0: never by count) or that moved ``translation`` metres or turned ``rotation_deg`` degrees from it."""

    every: int = 0
    translation: float = 0.1
    rotation_deg: float = 10.0

    def due(self, last_T_wc: np.ndarray | None, T_wc: np.ndarray, frames_since: int) -> bool:
        """Whether the frame with camera-to-world pose ``T_wc`` (4, 4) is a keyframe, given the last keyframe's pose
        (None before the first) and the frames since it."""
        if last_T_wc is None or (self.every > 0 and frames_since >= self.every):
            return True
        moved = np.linalg.norm(T_wc[:3, 3] - last_T_wc[:3, 3])
        turned = np.degrees(rotation_angle(last_T_wc[:3, :3].T @ T_wc[:3, :3]))
        return bool(moved >= self.translation or turned >= self.rotation_deg)


class MapBuilder:
    """Builds a ``Map`` from RGB-D keyframes with known poses (see the module doc).

    Args:
        camera_info: the colour camera; depth_info: intrinsics of unregistered depth images (as for ``System``).
        config: feature extractor and thresholds (``tracking.max_distance``, ``local_ratio``, depth range, ``bf``).
        radius: search radius in pixels at pyramid level 0 (scaled by the level's scale).
        depth_tolerance: largest relative difference between a matched keypoint's depth and the point's.
    Attributes:
        map: the map (None before the first keyframe).
        recognizer: the place recognizer indexing the keyframes.
    """

    def __init__(self, camera_info: CameraInfo, config: SlamConfig | None = None,
                 depth_info: CameraInfo | None = None, radius: float = 5.0, depth_tolerance: float = 0.1):
        self.config = config or SlamConfig()
        self.extractor = create_extractor(self.config.features, self.config.feature_conf)
        self.camera = Camera.from_info(camera_info, self.config.tracking.bf)
        self.depth_camera = None if depth_info is None else Camera.from_info(depth_info)
        self.radius = radius
        self.depth_tolerance = depth_tolerance
        self.recognizer = create_recognizer(self.config.place_recognition, self.config.place_recognition_conf)
        self.map: Map | None = None
        self._keyframe_db: KeyFrameDatabase | None = None

    def add(self, rgbd: RGBDFrame, T_wc: np.ndarray) -> KeyFrame:
        """Insert ``rgbd`` taken at camera-to-world pose ``T_wc`` (4, 4) as a keyframe; the keyframe."""
        cfg = self.config.tracking
        features = self.extractor.extract(rgbd.color)
        frame = Frame.create(rgbd.index, rgbd.stamp_ns, features, rgbd.depth, self.camera,
                             (cfg.depth_min, cfg.depth_max), self.depth_camera, rgbd.name, rgbd.color)
        frame.T_cw = invert(np.asarray(T_wc, dtype=np.float64))
        if self.map is None:
            self.map = Map(features.scale_factor, features.n_levels)
            self._keyframe_db = KeyFrameDatabase(self.recognizer, self.map)
        kf = self.map.add_keyframe(frame)
        kp_index, point_ids = self._match_map(kf)
        self.map.add_observations(kf, kp_index, point_ids)
        self.map.update_geometry(point_ids)
        self.map.update_descriptors(point_ids, features.distance)
        self.map.create_points(kf, np.flatnonzero(frame.has_depth & (kf.point_ids < 0)))
        self.map.update_connections(kf)
        frame.point_ids[:] = kf.point_ids
        self._keyframe_db.sync()
        return kf

    def _match_map(self, kf: KeyFrame) -> tuple[np.ndarray, np.ndarray]:
        """Keypoints (k,) of ``kf`` matched to existing map points (k,) by projection with depth agreement."""
        pts, frame, feats = self.map.points, kf.frame, kf.frame.features
        ids = np.flatnonzero(~pts.bad)
        points_c = pts.positions[ids] @ kf.T_cw[:3, :3].T + kf.T_cw[:3, 3]
        uv, visible = self.camera.project_visible(points_c)
        ids, uv, points_c = ids[visible], uv[visible], points_c[visible]
        level = pts.predict_level(ids, np.linalg.norm(points_c, axis=1), self.map.scale_factor, self.map.n_levels)
        match, _ = search_by_projection(uv, pts.descriptors[ids], self.radius * self.map.scale_factor ** level,
                                        frame.keypoints_un, feats.descriptors, feats.distance,
                                        self.config.tracking.threshold('max_distance', feats.distance),
                                        self.config.tracking.local_ratio,
                                        (level - 1, level + 1), feats.levels)
        found = np.flatnonzero(match >= 0)
        kp_index, z = match[found], points_c[found, 2]
        depth = frame.depth[kp_index]
        agree = (depth <= 0) | (np.abs(depth - z) <= self.depth_tolerance * z)
        return kp_index[agree], ids[found[agree]]

    def finish(self) -> Map | None:
        """Move every point to the mean world position of its observations with depth (updating normals and
        distance ranges) and fit the place recognizer; the map, None when no keyframe was added."""
        if self.map is None:
            return None
        self.recognizer.fit()
        pts = self.map.points
        ids = np.flatnonzero(~pts.bad)
        pid, kf_ids, kp = self.map.observation_arrays(ids)
        total, count = np.zeros((len(pts), 3)), np.zeros(len(pts))
        for k in np.unique(kf_ids).tolist():
            rows = np.flatnonzero(kf_ids == k)
            frame = self.map.keyframes[k].frame
            rows = rows[frame.has_depth[kp[rows]]]
            np.add.at(total, pid[rows], frame.points_w(kp[rows]))
            np.add.at(count, pid[rows], 1)
        fused = np.flatnonzero(count > 0)
        pts.positions[fused] = total[fused] / count[fused, None]
        self.map.update_geometry(fused)
        return self.map
