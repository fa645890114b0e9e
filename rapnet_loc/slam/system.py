"""``System``: the RGB-D front end as one object that the CLI and the ROS node drive frame by frame."""
from __future__ import annotations

import os
import time
from dataclasses import dataclass

import numpy as np

from rapnet_loc.errors import MapFormatError
from rapnet_loc.features.base import FeatureExtractor, Features, create_extractor, extractor_class
from rapnet_loc.geometry import invert
from rapnet_loc.io.types import CameraInfo, RGBDFrame
from rapnet_loc.landmarks.base import PoseEstimator
from rapnet_loc.slam.camera import Camera
from rapnet_loc.slam.config import SlamConfig
from rapnet_loc.slam.frame import Frame
from rapnet_loc.slam.keyframe_database import KeyFrameDatabase
from rapnet_loc.slam.local_mapping import LocalMapping
from rapnet_loc.slam.map import Map
from rapnet_loc.slam.map_io import save_map
from rapnet_loc.slam.mapping_thread import FairLock, MappingThread
from rapnet_loc.slam.odometry import OdometryPrior
from rapnet_loc.slam.optimizer import frame_covariance
from rapnet_loc.slam.tracking import Outcome, State, Tracking
from rapnet_loc.vpr.base import PlaceRecognizer, create_recognizer


@dataclass
class TrackResult:
    """Outcome of one frame.

    Attributes:
        stamp_ns: the frame's stamp.
        state: ``'ok'``, ``'lost'`` (no pose; also before the map is initialised), ``'relocalized'``,
            ``'new_map'`` (lost too long: a new map starts at this frame, ``TrackingConfig.new_map_after_s``) or
            ``'bridged'`` (lost, the pose predicted by wheel odometry from the last tracked frame,
            ``Tracking.bridge``).
        T_wc: (4, 4) camera-to-world pose in the world frame of map ``map_id`` as it was at this frame (world =
            first tracked camera, or the frame of a given map), None when lost; ``System.pose_in_first_map`` moves
            it into the first map's frame.
        n_keypoints: keypoints extracted.
        n_tracked: map points tracked (inliers of the final pose optimisation; 0 when lost).
        ms: processing time in milliseconds from ``System.process``'s ``start``: feature extraction included, or
            the wait for features extracted ahead (``rapnet_loc.slam.run.read_ahead``); local mapping included
            only when it runs in ``process`` (not ``threaded``).
        keyframe: whether the frame became a keyframe.
        map_id: the map the frame was tracked in (``rapnet_loc.slam.map``; 0 unless the front end started others).
        covariance: (6, 6) covariance of ``T_wc`` in ROS order from the final pose optimisation's matches
            (``rapnet_loc.slam.optimizer.frame_covariance``); zero for a bridged pose (the odometry's uncertainty
            is not known here); None when lost.
    """

    stamp_ns: int
    state: str
    T_wc: np.ndarray | None
    n_keypoints: int
    n_tracked: int
    ms: float
    keyframe: bool
    map_id: int = 0
    covariance: np.ndarray | None = None


class System:
    """Feature extraction, tracking, local mapping and place recognition of an RGB-D stream.

    Args:
        camera_info: the colour camera (depth must be aligned to it).
        config: settings (defaults: ``SlamConfig()``).
        depth_info: intrinsics of the depth images when they are not registered to the colour images (same
            optical centre assumed, see ``Frame.create``); None when depth is aligned to colour.
        slam_map: a map to localize against, built with ``config``'s feature extractor (e.g. loaded by
            ``rapnet_loc.slam.map_io``); it is not extended (localization mode, ``Tracking.localization_only``).
        odometry: wheel-odometry motion prior (``rapnet_loc.slam.odometry``), or None for the constant-velocity
            motion model alone.
        recognizer: the place recognizer that gives relocalization candidates; default: ``config``'s. The map's
            keyframes it does not hold yet are indexed on the first frame (``KeyFrameDatabase.sync``).
        estimator: a pose estimator consulted on every frame that starts lost (its pose, when it gives one, is the
            frame's pose prior: ``set_pose_prior``); None for none.
        threaded: run local mapping in a thread of its own (``rapnet_loc.slam.mapping_thread``), as ORB-SLAM2 does:
            a keyframe's frame does not wait for it, and ``shutdown`` ends it. False: local mapping runs in
            ``process`` on each keyframe, and a run is reproducible bit for bit.
    Attributes:
        keyframe_db: the recognizer kept in step with the map (None before the first frame).
    """

    def __init__(self, camera_info: CameraInfo, config: SlamConfig | None = None,
                 depth_info: CameraInfo | None = None, slam_map: Map | None = None,
                 odometry: OdometryPrior | None = None, recognizer: PlaceRecognizer | None = None,
                 estimator: PoseEstimator | None = None, threaded: bool = False):
        self.config = config or SlamConfig()
        self.threaded = threaded
        self._lock = FairLock()
        self._mapping: MappingThread | None = None
        extractor_class(self.config.features)     # an unknown name fails here, the model loads on first use
        self._extractor: FeatureExtractor | None = None
        self.camera = Camera.from_info(camera_info, self.config.tracking.bf)
        self.depth_camera = None if depth_info is None else Camera.from_info(depth_info)
        self._n_frames = 0
        self.map: Map | None = slam_map
        self.localization_only = slam_map is not None
        self.tracking: Tracking | None = None
        self._recognizer = recognizer or create_recognizer(self.config.place_recognition,
                                                           self.config.place_recognition_conf)
        self.keyframe_db: KeyFrameDatabase | None = None
        self._odometry = odometry
        self.estimator = estimator
        self._pose_prior: np.ndarray | None = None

    @property
    def extractor(self) -> FeatureExtractor:
        """The configuration's feature extractor, created on first use: a front end fed with features extracted
        elsewhere (``process_features``) never loads it, nor its model."""
        if self._extractor is None:
            self._extractor = create_extractor(self.config.features, self.config.feature_conf)
        return self._extractor

    def _start(self, features: Features) -> None:
        """Create the map (unless localizing), tracking, local mapping and the keyframe database on the first
        frame, once the feature pyramid and descriptor metric are known."""
        if not self.localization_only:
            self.map = Map(features.scale_factor, features.n_levels)
        self.keyframe_db = KeyFrameDatabase(self._recognizer, self.map)
        self.keyframe_db.sync()
        local_mapping = LocalMapping(self.map, self.camera, self.config, features.distance, self._recognizer)
        if self.threaded and not self.localization_only:
            local_mapping = self._mapping = MappingThread(local_mapping, self._lock)
        self.tracking = Tracking(self.camera, self.map, local_mapping, self.config.tracking, self.keyframe_db,
                                 self.localization_only, self._odometry)

    def process(self, rgbd: RGBDFrame, features: Features | None = None, start: float | None = None) -> TrackResult:
        """Track one frame (colour (H, W, 3) uint8 RGB, depth (H, W) float32 metres aligned to colour).

        Args:
            features: the frame's features when they were extracted already by this front end's ``extractor``
                (e.g. in another thread while the previous frame was tracked: ``rapnet_loc.slam.run``); None to
                extract them here.
            start: ``time.perf_counter()`` when the frame's processing began (``TrackResult.ms`` counts from it;
                default: now).
        """
        start = time.perf_counter() if start is None else start
        if self.estimator is not None and (self.tracking is None or self.tracking.state != State.OK):
            estimate = self.estimator.estimate(rgbd)
            if estimate is not None:
                self.set_pose_prior(estimate.T_wc)
        if features is None:
            features = self.extractor.extract(rgbd.color)
        return self._track(rgbd.stamp_ns, features, rgbd.depth, start, rgbd.name, rgbd.color)

    def process_features(self, stamp_ns: int, features: Features, depth: np.ndarray,
                         image: np.ndarray | None = None) -> TrackResult:
        """Track one frame whose features were extracted elsewhere (e.g. by another ROS node): ``features`` of
        the colour image, ``depth`` (H, W) float32 metres aligned to it, the colour ``image`` (H, W, 3) uint8 RGB
        when at hand (place recognizers that need it, see ``PlaceRecognizer.needs_image``). The features must come
        from an extractor with the same descriptor metric and pyramid as the map's. The pose estimator is not
        consulted (it needs the image)."""
        return self._track(stamp_ns, features, depth, time.perf_counter(), image=image)

    def start_sequence(self, odometry: OdometryPrior | None = None) -> None:
        """The next frame starts another sequence in the same map (lifelong replay: the next bag of a scene), with
        its own wheel odometry (or none): the front end relocalizes first (``Tracking.new_sequence``)."""
        self._odometry = odometry
        if self.tracking is not None:
            self.tracking.odometry = odometry
            self.tracking.new_sequence()

    def set_pose_prior(self, T_wc: np.ndarray) -> None:
        """Where the camera is, from outside (Nav2's ``/initialpose``, a place-recognition or landmark pose):
        (4, 4) camera-to-world pose in the map's world frame. The next frame relocalizes against the keyframes
        near it before anything else; before the map exists, the map starts at it."""
        T_wc = np.asarray(T_wc, np.float64)
        if T_wc.shape != (4, 4) or not np.isfinite(T_wc).all():
            raise ValueError(f'a pose prior must be a finite (4, 4) matrix, got shape {T_wc.shape}')
        self._pose_prior = invert(T_wc)

    def _track(self, stamp_ns: int, features: Features, depth: np.ndarray, start: float, name: str = '',
               image: np.ndarray | None = None) -> TrackResult:
        """Track a frame of ``features`` and ``depth`` (named ``name``, with its colour ``image`` or None);
        ``start`` is the ``perf_counter`` time its processing began. Holds the map's lock."""
        with self._lock:
            return self._track_locked(stamp_ns, features, depth, start, name, image)

    def _track_locked(self, stamp_ns: int, features: Features, depth: np.ndarray, start: float, name: str,
                      image: np.ndarray | None) -> TrackResult:
        if self.tracking is None:
            self._start(features)
        if self._pose_prior is not None:
            self.tracking.pose_prior, self._pose_prior = self._pose_prior, None
        cfg = self.config.tracking
        keep_image = self._recognizer.needs_image
        frame = Frame.create(self._n_frames, stamp_ns, features, depth, self.camera, (cfg.depth_min, cfg.depth_max),
                             self.depth_camera, name, image if keep_image else None)
        self._n_frames += 1
        outcome = self.tracking.track(frame)
        keyframe = self.tracking.last_kf_frame_id == frame.id
        if keyframe:
            self.keyframe_db.sync()
        frame.image = None
        ms = 1000.0 * (time.perf_counter() - start)
        if outcome == Outcome.LOST:
            bridged = self.tracking.bridge(frame)
            if bridged is not None:
                return TrackResult(frame.stamp_ns, 'bridged', bridged, len(frame), 0, ms, False,
                                   self.tracking.last_tracked_map, np.zeros((6, 6)))
            return TrackResult(frame.stamp_ns, outcome.value, None, len(frame), 0, ms, keyframe, self.map.active_map)
        return TrackResult(frame.stamp_ns, outcome.value, frame.T_wc, len(frame), self.tracking.n_inliers, ms, keyframe,
                           self.map.active_map, frame_covariance(frame, self.map.points.positions, self.camera))

    def pose_in_first_map(self, result: TrackResult) -> np.ndarray | None:
        """(4, 4) camera-to-world pose of ``result`` in the first map's world frame, through the merges of its map
        since (``Map.to_first_frame``); None when lost, or while its map is neither anchored (started at an
        odometry-predicted pose) nor merged into an anchored one."""
        S = None if result.T_wc is None else self.map.to_first_frame(result.map_id)
        return None if S is None else S @ result.T_wc

    def anchor(self, result: TrackResult) -> str:
        """How the pose of ``result`` relates to the first map: ``'first map'`` (tracked in it, or in a map merged
        into it since), ``'odometry'`` (bridged by odometry, or in a map started at an odometry-predicted pose and
        not merged yet), ``'none'`` (in a map that is neither: no pose in the first map's frame) or ``'lost'``."""
        if result.T_wc is None:
            return 'lost'
        root = self.map.root(result.map_id)
        if root not in self.map.anchored:
            return 'none'
        return 'first map' if root == 0 and result.state != 'bridged' else 'odometry'

    def covariance_in_first_map(self, result: TrackResult) -> np.ndarray | None:
        """(6, 6) ROS-order covariance of ``pose_in_first_map(result)``: the tracking covariance rotated into the
        first map's world frame (the uncertainty of an odometry anchor is not in it); None when there is no pose."""
        S = None if result.T_wc is None else self.map.to_first_frame(result.map_id)
        if S is None:
            return None
        R = np.kron(np.eye(2), S[:3, :3])
        return R @ result.covariance @ R.T

    def save_map(self, path: str | os.PathLike) -> None:
        """Save the map with the place recognizer, re-fitted on all its keyframes (``rapnet_loc.slam.map_io``).

        Raises:
            MapFormatError: no map yet (no frame was tracked; ``save_map`` refuses a map without keyframes).
        """
        if self.map is None:
            raise MapFormatError(f'cannot save {path}: no map yet (no frame was tracked)')
        with self._lock:
            if self._mapping is not None:
                self._mapping.wait_idle()
            self._recognizer.fit()
            save_map(path, self.map, self.camera, self.config, self._recognizer)

    def map_points(self) -> np.ndarray:
        """(n, 3) world positions of the map's points not culled (none before the first frame), read under the
        map's lock: local mapping may be changing the map in its thread."""
        if self.map is None:
            return np.zeros((0, 3))
        with self._lock:
            points = self.map.points
            return points.positions[~points.bad].copy()

    def shutdown(self) -> None:
        """Let local mapping integrate the keyframes it has queued and end its thread (nothing to do when it runs
        in ``process``); the map is then complete. Frames may still be processed afterwards, local mapping then
        running in ``process``."""
        if self._mapping is not None:
            self._mapping.close()
            self.tracking.local_mapping = self.tracking.merging.local_mapping = self._mapping.local_mapping
            self._mapping = None

    def localize(self, rgbd: RGBDFrame) -> TrackResult:
        """Localize one frame on its own against the map (localization mode only): relocalization, then the
        local-map refinement, with no motion prior from the frames before."""
        if not self.localization_only:
            raise ValueError('System.localize needs a map to localize against (slam_map)')
        if self.tracking is not None:
            self.tracking.state = State.LOST
        return self.process(rgbd)
