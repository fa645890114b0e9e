"""``System``: the RGB-D front end as one object that the CLI and the ROS node drive frame by frame."""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from rapnet_loc.features.base import Features, create_extractor
from rapnet_loc.io.types import CameraInfo, RGBDFrame
from rapnet_loc.slam.camera import Camera
from rapnet_loc.slam.config import SlamConfig
from rapnet_loc.slam.frame import Frame
from rapnet_loc.slam.local_mapping import LocalMapping
from rapnet_loc.slam.map import Map
from rapnet_loc.slam.relocalization import CandidateFn, recent_keyframes
from rapnet_loc.slam.tracking import Outcome, Tracking


@dataclass
class TrackResult:
    """Outcome of one frame.

    Attributes:
        stamp_ns: the frame's stamp.
        state: ``'ok'``, ``'lost'`` (no pose; also before the map is initialised) or ``'relocalized'``.
        T_wc: (4, 4) camera-to-world pose (world = first tracked camera), None when lost.
        n_keypoints: keypoints extracted.
        n_tracked: map points tracked (inliers of the final pose optimisation; 0 when lost).
        ms: processing time in milliseconds, feature extraction included.
        keyframe: whether the frame became a keyframe.
    """

    stamp_ns: int
    state: str
    T_wc: np.ndarray | None
    n_keypoints: int
    n_tracked: int
    ms: float
    keyframe: bool


class System:
    """Feature extraction, tracking and local mapping of an RGB-D stream.

    Args:
        camera_info: the colour camera (depth must be aligned to it).
        config: settings (defaults: ``SlamConfig()``).
        candidates: relocalization candidate selection.
        depth_info: intrinsics of the depth images when they are not registered to the colour images (same
            optical centre assumed, see ``Frame.create``); None when depth is aligned to colour.
    """

    def __init__(self, camera_info: CameraInfo, config: SlamConfig | None = None,
                 candidates: CandidateFn = recent_keyframes, depth_info: CameraInfo | None = None):
        self.config = config or SlamConfig()
        self.extractor = create_extractor(self.config.features, self.config.feature_conf)
        self.camera = Camera.from_info(camera_info, self.config.tracking.bf)
        self.depth_camera = None if depth_info is None else Camera.from_info(depth_info)
        self._n_frames = 0
        self.map: Map | None = None
        self.tracking: Tracking | None = None
        self._candidates = candidates

    def _start(self, features: Features) -> None:
        """Create the map, tracking and local mapping on the first frame, once the feature pyramid and descriptor
        metric are known."""
        self.map = Map(features.scale_factor, features.n_levels)
        local_mapping = LocalMapping(self.map, self.camera, self.config.local_mapping, features.distance)
        self.tracking = Tracking(self.camera, self.map, local_mapping, self.config.tracking, self._candidates)

    def process(self, rgbd: RGBDFrame) -> TrackResult:
        """Track one frame (colour (H, W, 3) uint8 RGB, depth (H, W) float32 metres aligned to colour)."""
        start = time.perf_counter()
        features = self.extractor.extract(rgbd.color)
        if self.tracking is None:
            self._start(features)
        cfg = self.config.tracking
        frame = Frame.create(self._n_frames, rgbd.stamp_ns, features, rgbd.depth, self.camera,
                             (cfg.depth_min, cfg.depth_max), self.depth_camera)
        self._n_frames += 1
        n_kfs = len(self.map.keyframes)
        outcome = self.tracking.track(frame)
        ms = 1000.0 * (time.perf_counter() - start)
        return TrackResult(frame.stamp_ns, outcome.value, None if outcome == Outcome.LOST else frame.T_wc,
                           len(frame), self.tracking.n_inliers, ms, len(self.map.keyframes) > n_kfs)
