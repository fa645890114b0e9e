"""``map``: the default pose estimator, structure-based localization of each frame on its own against a saved map.

Each frame is relocalized as the front end relocalizes a lost frame (``System.localize``): candidate keyframes from
the map's place recognizer, 2D-3D matches with each candidate's map points, PnP-RANSAC and pose optimisation, then a
projection search of the local map and a final pose optimisation. The covariance comes from the final pose
optimisation's matches (``rapnet_loc.slam.optimizer.frame_covariance``).
"""
from __future__ import annotations

import numpy as np

from rapnet_loc.errors import ConfigError
from rapnet_loc.io.types import RGBDFrame
from rapnet_loc.landmarks.base import PoseEstimate, PoseEstimator, Scene, register
from rapnet_loc.slam.optimizer import frame_covariance
from rapnet_loc.slam.system import System
from rapnet_loc.vpr.base import Ranking


@register('map')
class MapLocalizer(PoseEstimator):
    """Map-based relocalization of single frames (see the module doc); needs ``scene.map_file``."""

    def __init__(self, conf: dict | None, scene: Scene):
        super().__init__(conf, scene)
        map_file = scene.map_file
        if map_file is None:
            raise ConfigError("pose estimator 'map' localizes against a map: give a map file")
        config = scene.config if scene.config is not None else map_file.settings()
        self.system = System(scene.camera, config, depth_info=scene.depth_camera, slam_map=map_file.map,
                             recognizer=map_file.recognizer_for(config))

    def ranking(self, k: int) -> Ranking:
        """The place recognizer's ``k`` best keyframes for the last frame given to ``estimate``, as relocalization
        ranked them (empty when it had no keypoints to query with)."""
        last = self.system.keyframe_db.last_query
        if last is None or last[0] is not self.system.tracking.last_frame:
            return Ranking(np.zeros(0, np.int64), np.zeros(0))
        return Ranking(last[1].ids[:k], last[1].scores[:k])

    def estimate(self, rgbd: RGBDFrame) -> PoseEstimate | None:
        result = self.system.localize(rgbd)
        T_wc = self.system.pose_in_first_map(result)      # None also in a map never joined to the first one
        if T_wc is None:
            return None
        frame = self.system.tracking.last_frame
        return PoseEstimate(T_wc, frame_covariance(frame, self.system.map.points.positions,
                                                          self.system.camera), result.n_tracked)
