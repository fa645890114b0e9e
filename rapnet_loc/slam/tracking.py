"""RGB-D tracking (ORB-SLAM2 ``Tracking``): pose of each frame against the map, and keyframe decisions.

Per frame: (1) a first pose from the motion prior (constant velocity over the stamp gap, or wheel odometry; see
``rapnet_loc.slam.odometry``) by projection search of the last frame's points, falling back to descriptor matching
against the reference keyframe; when lost, relocalization instead; (2) refinement against the local map (points of
the keyframes that see the current matches and their best covisible keyframes) by projection search and pose
optimisation; (3) the keyframe decision. The first frame with enough depth initialises the map (first keyframe at
the world origin, one point per keypoint with depth).

Moving objects: every map point that tracking creates starts on probation (``MapPoints.probation``). Poses are
estimated from the matches of trusted points only, as long as there are ``confirm_min_matches`` of them, and every
match is then classified against that pose: a consistent observation (pose inlier whose measured depth agrees with
the point's) brings a point closer to being trusted, an inconsistent one is dropped from the frame and counts as a
strike; points on probation with ``probation_strikes`` strikes are erased. Points on a walking person leave their
map position within a few frames, so they are never trusted and cannot pull the pose however many there are.

Pose prior: a pose given from outside (``pose_prior``: Nav2's initial pose, a place-recognition or landmark pose)
seeds the next frame before anything else. The points of the keyframes looking the same way as the prior
(``relocalization.keyframes_near``) are projected with it and searched for within ``prior_radius`` pixels; the
pose optimised from those matches is kept when it has ``min_pose_inliers`` inliers and lies within the gate
(``prior_max_shift`` metres, ``prior_max_turn_deg`` degrees) of the prior. Otherwise the frame relocalizes by
descriptor matching against those keyframes, nearest first; when that fails too, tracking goes on as if there were
no prior. Given before the map exists, the prior is the pose of the first keyframe, so the map is built in its
frame.

Several maps (ORB-SLAM3's Atlas; mapping mode): when tracking stays lost for ``new_map_after_s`` (every frame's
relocalization failing), a new map starts at the current frame, at the pose wheel odometry predicts from the last
tracked frame when there is odometry (the new map is then anchored in the first map's frame), else at the last
tracked pose (not anchored); tracking goes on in it. Relocalization still searches every map, and each new keyframe
looks for places of the other maps to merge them (``rapnet_loc.slam.merging``). Frames report the map they were
tracked in; ``Map.to_first_frame`` moves their poses into the first map's frame once their map is anchored or merged.

Odometry bridge: with wheel odometry, a lost frame up to ``odom_bridge_s`` after the last tracked frame gets the
pose the odometry predicts from it (``bridge``), so that the output has no gap before a new map starts.

Odometry gate: with wheel odometry, a frame relocalized within a sequence must lie within ``odom_gate_shift`` metres
plus ``odom_gate_drift`` times the distance travelled since the last tracked frame, and ``odom_gate_turn_deg``
degrees, of the pose the odometry predicts from that frame, whenever both poses can be put in one world frame (one
map, or two maps in the first map's frame); a merge of a map anchored by this sequence's odometry must likewise move
its keyframe by no more than the gate allows for the distance travelled since the anchor's last tracked frame.
Repeated or symmetric places that pass relocalization's checks are then refused when they are not where the robot
can be.

Stamps: a stamp that is not after the previous frame's is logged and treated as a discontinuity (no motion
predicted, velocity forgotten), as is a gap longer than ``max_motion_gap_s``. A jump of more than
``new_sequence_gap_s`` either way starts a new sequence (``new_sequence``): the next frame relocalizes against the
whole map first, as after a kidnap, since the robot may have been anywhere in between.
"""
from __future__ import annotations

import logging
from collections import Counter
from enum import Enum

import numpy as np

from rapnet_loc.features.matching import match_mutual, search_by_projection
from rapnet_loc.geometry import invert, pose_difference
from rapnet_loc.slam.camera import Camera
from rapnet_loc.slam.config import TrackingConfig
from rapnet_loc.slam.frame import Frame
from rapnet_loc.slam.local_mapping import LocalMapping
from rapnet_loc.slam.mapping_thread import MappingThread
from rapnet_loc.slam.map import KeyFrame, Map
from rapnet_loc.slam.merging import Detection, MapMerging
from rapnet_loc.slam.odometry import ConstantVelocity, OdometryPrior
from rapnet_loc.slam.optimizer import chi2_thresholds, optimize_pose, project_residuals
from rapnet_loc.slam.relocalization import CandidateFn, PoseGate, keyframes_near, relocalize

LOG = logging.getLogger(__name__)


class State(Enum):
    """Tracker state between frames."""

    NOT_INITIALIZED = 'not_initialized'
    OK = 'ok'
    LOST = 'lost'


class Outcome(str, Enum):
    """What happened to one frame: tracked, lost (no pose), or relocalized after being lost."""

    OK = 'ok'
    LOST = 'lost'
    RELOCALIZED = 'relocalized'
    NEW_MAP = 'new_map'


class Tracking:
    """Tracks frames against ``slam_map``; new keyframes go to ``local_mapping``.

    Args:
        camera: the colour camera.
        slam_map: the map to track against and extend.
        local_mapping: processes each new keyframe, here and now or in its thread (``MappingThread``).
        cfg: thresholds.
        candidates: relocalization candidate selection (see ``rapnet_loc.slam.relocalization``).
        localization_only: track against ``slam_map`` without extending it (ORB-SLAM2's localization mode): no
            keyframes or map points are created, and the first frames relocalize against the map.
        odometry: wheel-odometry motion prior, used instead of the constant-velocity model where it covers the
            stamps of both frames; None for none.
    Attributes:
        state: ``State`` after the last frame.
        reference_kf: keyframe sharing most points with the last tracked frame.
        motion: the constant-velocity motion model.
        n_inliers: map-point inliers of the last frame (0 when lost; all its points for the first keyframe).
        refused_keyframes: frames whose keyframe was refused because local mapping's queue was full.
        pose_prior: (4, 4) ``T_cw`` for the next frame from outside (see the module doc), or None; consumed by it.
        last_tracked: the last frame that got a pose (None at the start of a sequence); last_tracked_map: its map.
        anchored_at: map id -> stamp of the last tracked frame before that map started at the odometry-predicted
            pose (the start of the odometry bridge it was anchored by).
        lost_since_ns: stamp of the first frame of the current loss (None while tracking).
        merging: detects places of other maps in new keyframes and merges maps (``rapnet_loc.slam.merging``).
    """

    def __init__(self, camera: Camera, slam_map: Map, local_mapping: LocalMapping | MappingThread,
                 cfg: TrackingConfig,
                 candidates: CandidateFn, localization_only: bool = False,
                 odometry: OdometryPrior | None = None):
        self.camera = camera
        self.map = slam_map
        self.local_mapping = local_mapping
        self.cfg = cfg
        self.candidates = candidates
        self.localization_only = localization_only
        self.state = State.LOST if localization_only else State.NOT_INITIALIZED
        self.last_frame: Frame | None = None
        self.reference_kf: KeyFrame | None = None
        self.motion = ConstantVelocity(cfg.max_motion_gap_s)
        self.odometry = odometry
        self.last_kf_frame_id = -1
        self.last_reloc_frame_id = -(10**9)
        self.n_inliers = 0
        self.refused_keyframes = 0
        self.pose_prior: np.ndarray | None = None
        self.last_tracked: Frame | None = None
        self.last_tracked_map = 0
        self.lost_since_ns: int | None = None
        self.anchored_at: dict[int, int] = {}
        self.merging = MapMerging(slam_map, camera, cfg, candidates, local_mapping)

    def track(self, frame: Frame) -> Outcome:
        """Estimate ``frame.T_cw`` (left None when lost) and update the map; the outcome of the frame."""
        outcome = Outcome.OK
        self._check_stamp(frame)
        prior, self.pose_prior = self.pose_prior, None
        if self.state == State.NOT_INITIALIZED:
            ok = self._initialize(frame, np.eye(4) if prior is None else prior)
        else:
            from_prior = prior is not None and self._track_prior(frame, prior)
            if from_prior:
                ok = True
            elif self.state == State.OK:
                ok = self._track_motion_model(frame) or self._track_reference_keyframe(frame)
            else:
                ok = relocalize(frame, self.map, self.camera, self.cfg, self.candidates, self._odometry_gate(frame))
            if ok and (from_prior or self.state != State.OK):
                self.last_reloc_frame_id = frame.id
                self.motion.reset()
                outcome = Outcome.RELOCALIZED
            ok = ok and self._track_local_map(frame)
            if ok:
                if self.state == State.OK and not from_prior:
                    last = self.last_frame
                    self.motion.update(last.T_cw, last.stamp_ns, frame.T_cw, frame.stamp_ns)
                if not self.localization_only and self._need_keyframe(frame):
                    self._create_keyframe(frame)
                    if len(self.map.map_ids) > 1:
                        self._merge(frame)
            elif self._new_map_due(frame) and self._start_new_map(frame):
                ok, outcome = True, Outcome.NEW_MAP
        if ok:
            self.state = State.OK
            self.map.active_map = self.reference_kf.map_id
            self.last_tracked, self.last_tracked_map, self.lost_since_ns = frame, self.reference_kf.map_id, None
        else:
            if self.state != State.NOT_INITIALIZED:
                self.state = State.LOST
                self.lost_since_ns = frame.stamp_ns if self.lost_since_ns is None else self.lost_since_ns
            frame.T_cw = None
            frame.point_ids[:] = -1
            self.n_inliers = 0
            outcome = Outcome.LOST
        self.last_frame = frame
        return outcome

    def new_sequence(self) -> None:
        """The next frame starts another sequence of the same map (a new bag, a kidnap): no motion from the last
        frame, and once the map exists the next frame relocalizes before anything else (state LOST)."""
        if self.state != State.NOT_INITIALIZED:
            self.state = State.LOST
        self.motion.reset()
        self.last_frame = self.last_tracked = None
        self.n_inliers = 0

    def _check_stamp(self, frame: Frame) -> None:
        """Log a stamp that does not follow the previous frame's, or follows it after a long gap, and forget the
        velocity: the motion between the two frames is unknown; after a jump of ``new_sequence_gap_s``, start a
        new sequence."""
        if self.last_frame is None:
            return
        dt = (frame.stamp_ns - self.last_frame.stamp_ns) / 1e9
        if abs(dt) > self.cfg.new_sequence_gap_s:
            LOG.info('frame %d: %.1f s from the previous frame; a new sequence starts: relocalizing first',
                     frame.id, dt)
            self.new_sequence()
        elif dt <= 0:
            LOG.warning('frame %d: stamp %.9f s is %.3f s before the previous frame\'s; treated as a discontinuity '
                        '(motion model reset)', frame.id, frame.stamp_ns / 1e9, -dt)
            self.motion.reset()
        elif dt > self.cfg.max_motion_gap_s:
            LOG.info('frame %d: %.3f s after the previous frame; motion model reset', frame.id, dt)
            self.motion.reset()

    def _predicted_motion(self, frame: Frame) -> np.ndarray:
        """(4, 4) motion ``T_cw(frame) @ T_wc(last frame)`` expected from the odometry, else the motion model; none
        when the stamps do not increase."""
        last = self.last_frame
        if frame.stamp_ns <= last.stamp_ns:
            return np.eye(4)
        if self.odometry is not None:
            motion = self.odometry.motion(last.stamp_ns, frame.stamp_ns)
            if motion is not None:
                return motion
        return self.motion.predict(last.stamp_ns, frame.stamp_ns)

    def _new_map_due(self, frame: Frame) -> bool:
        """Whether tracking has been lost for ``new_map_after_s`` (mapping mode only)."""
        return (not self.localization_only and self.lost_since_ns is not None
                and (frame.stamp_ns - self.lost_since_ns) / 1e9 >= self.cfg.new_map_after_s)

    def _start_new_map(self, frame: Frame) -> bool:
        """Start a new map at ``frame`` (ORB-SLAM3's ``CreateMapInAtlas``; RGB-D initializes from one frame): at the
        pose the wheel odometry predicts from the last tracked frame (the map is then anchored in the first map's
        frame), else at the last tracked pose (not anchored). False when the frame has too little depth."""
        if frame.has_depth.sum() < self.cfg.init_min_points:
            return False
        predicted = None
        if self.odometry is not None and self.last_tracked is not None:
            motion = self.odometry.motion(self.last_tracked.stamp_ns, frame.stamp_ns)
            predicted = None if motion is None else motion @ self.last_tracked.T_cw
        T_cw = predicted if predicted is not None else (
            np.eye(4) if self.last_tracked is None else self.last_tracked.T_cw)
        map_id = self.map.start_map(anchored=predicted is not None)
        if predicted is not None:
            self.anchored_at[map_id] = self.last_tracked.stamp_ns
        self._initialize(frame, T_cw)
        self.motion.reset()
        LOG.info('frame %d: lost for %.1f s; new map %d started%s', frame.id,
                 (frame.stamp_ns - self.lost_since_ns) / 1e9, map_id,
                 ' at the odometry-predicted pose' if predicted is not None else
                 ' (not anchored: no odometry over the loss)')
        return True

    def _merge(self, frame: Frame) -> None:
        """Look for another map's place in the keyframe just made of ``frame`` (``rapnet_loc.slam.merging``); after
        a merge the frame keeps its keyframe's pose, moved and refined by it. The detection does not wait for local
        mapping; the merge itself does (``MapMerging._merge``)."""
        kf = self.reference_kf
        if self.merging.process(kf, self._merge_gate):
            frame.T_cw = kf.T_cw.copy()

    def bridge(self, frame: Frame) -> np.ndarray | None:
        """(4, 4) camera-to-world pose that the odometry predicts for a lost ``frame`` from the last tracked frame,
        in that frame's map (``last_tracked_map``), while the loss is at most ``odom_bridge_s`` old; None without
        odometry over it or a last tracked frame in this sequence. Tracking itself stays lost."""
        last = self.last_tracked
        if self.odometry is None or last is None or (frame.stamp_ns - last.stamp_ns) / 1e9 > self.cfg.odom_bridge_s:
            return None
        motion = self.odometry.motion(last.stamp_ns, frame.stamp_ns)
        return None if motion is None else invert(motion @ last.T_cw)

    def _within_odometry_gate(self, T_wc: np.ndarray, predicted_wc: np.ndarray, from_ns: int, to_ns: int) -> bool:
        """Whether camera pose ``T_wc`` (4, 4) lies within the odometry gate (``odom_gate_*``) of the pose
        ``predicted_wc`` that the odometry gives from ``from_ns`` to ``to_ns``; True when it does not cover them."""
        travelled = self.odometry.travelled(from_ns, to_ns)
        if travelled is None:
            return True
        shift, turn = pose_difference(predicted_wc, T_wc)
        cfg = self.cfg
        return shift <= cfg.odom_gate_shift + cfg.odom_gate_drift * travelled and turn <= cfg.odom_gate_turn_deg

    def _odometry_gate(self, frame: Frame) -> PoseGate | None:
        """With odometry, while lost within a sequence: a relocalized pose of ``frame`` must lie within the odometry
        gate of the pose the odometry predicts from the last tracked frame, where both can be put in one frame
        (``Map.common_frame``); None (no gate) without odometry or a last tracked frame."""
        last = self.last_tracked
        motion = None if self.odometry is None or last is None else self.odometry.motion(last.stamp_ns,
                                                                                         frame.stamp_ns)
        if motion is None:
            return None
        home, S_home = self.map.common_frame(self.last_tracked_map)
        predicted_wc = S_home @ invert(motion @ last.T_cw)

        def gate(f: Frame, kf: KeyFrame) -> bool:
            there, S_there = self.map.common_frame(kf.map_id)
            return there != home or self._within_odometry_gate(S_there @ f.T_wc, predicted_wc, last.stamp_ns,
                                                               f.stamp_ns)
        return gate

    def _merge_gate(self, detection: Detection) -> bool:
        """With odometry: a detection between two maps that are both in the first map's frame, one of them anchored
        by this sequence's odometry, must put the keyframe within the odometry gate of where it already is."""
        since = self.anchored_at.get(self.map.root(detection.kf_map),
                                     self.anchored_at.get(self.map.root(detection.match_map)))
        kf_frame, S_kf = self.map.common_frame(detection.kf_map)
        match_frame, S_match = self.map.common_frame(detection.match_map)
        if self.odometry is None or since is None or kf_frame != -1 or match_frame != -1:
            return True
        kf = self.map.keyframes[detection.kf_id]
        return self._within_odometry_gate(S_match @ detection.S @ kf.T_wc, S_kf @ kf.T_wc, since, kf.frame.stamp_ns)

    def _initialize(self, frame: Frame, T_cw: np.ndarray) -> bool:
        """First keyframe at pose ``T_cw`` (4, 4) with a map point (on probation) for every keypoint with depth."""
        valid = np.flatnonzero(frame.has_depth)
        if len(valid) < self.cfg.init_min_points:
            return False
        frame.T_cw = T_cw.copy()
        kf = self.map.add_keyframe(frame)
        ids = self._create_points(kf, valid)
        frame.point_ids[valid] = ids
        self.local_mapping.process(kf, ids)
        self.reference_kf = kf
        self.last_kf_frame_id = frame.id
        self.n_inliers = len(valid)
        return True

    def _project_search(self, frame: Frame, points_w: np.ndarray, descriptors: np.ndarray, radius: np.ndarray,
                        level_range: tuple[np.ndarray, np.ndarray], ratio: float) -> np.ndarray:
        """(M,) keypoint of ``frame`` matched to each of M world points (projected with ``frame.T_cw``) or -1."""
        R, t = frame.T_cw[:3, :3], frame.T_cw[:3, 3]
        uv, visible = self.camera.project_visible(points_w @ R.T + t)
        match = np.full(len(points_w), -1, np.int64)
        feats = frame.features
        found, _ = search_by_projection(uv[visible], descriptors[visible], radius[visible], frame.keypoints_un,
                                        feats.descriptors, feats.distance,
                                        self.cfg.threshold('max_distance', feats.distance), ratio,
                                        (level_range[0][visible], level_range[1][visible]), feats.levels,
                                        available=frame.point_ids < 0)
        match[visible] = found
        return match

    def _track_motion_model(self, frame: Frame) -> bool:
        """Predict the pose with the motion model; match the last frame's map points and temporary points."""
        cfg, last, pts = self.cfg, self.last_frame, self.map.points
        frame.T_cw = self._predicted_motion(frame) @ last.T_cw
        tracked = last.matched()
        tracked = tracked[~pts.bad[last.point_ids[tracked]]]
        vo = self._vo_keypoints(last)
        kp_rows = np.r_[tracked, vo]
        pids = np.r_[last.point_ids[tracked], np.full(len(vo), -1, np.int64)]
        points_w = np.vstack([pts.positions[pids[:len(tracked)]], last.points_w(vo)])
        descriptors = np.vstack([pts.descriptors[pids[:len(tracked)]], last.features.descriptors[vo]])
        levels = last.features.levels[kp_rows].astype(np.int64)
        scales = last.features.level_scales[kp_rows]
        for factor in (1.0, cfg.motion_radius_retry):
            match = self._project_search(frame, points_w, descriptors, cfg.motion_radius * factor * scales,
                                         (levels - 1, levels + 1), cfg.motion_ratio)
            if (match >= 0).sum() >= cfg.motion_min_matches:
                break
        else:
            return False
        rows = np.flatnonzero(match >= 0)
        kps, pids = match[rows], pids[rows]
        trusted = (pids >= 0) & (pts.probation[pids] == 0)
        keep = self._estimate_pose(frame, points_w[rows], kps, trusted) & (pids >= 0)
        frame.point_ids[kps[keep]] = pids[keep]
        return int(keep.sum()) >= cfg.min_pose_inliers

    def _track_prior(self, frame: Frame, prior: np.ndarray) -> bool:
        """Pose from a prior ``T_cw`` (4, 4) given from outside: a gated projection search of the points of the
        keyframes near it, else relocalization against those keyframes (see the module doc)."""
        cfg, pts = self.cfg, self.map.points
        near = keyframes_near(prior, cfg.prior_max_angle_deg)
        kfs = near(self.map, frame, cfg.local_max_keyframes)
        if kfs:
            frame.point_ids[:] = -1
            frame.T_cw = prior.copy()
            ids = self.map.points_of([kf.id for kf in kfs])
            ids, dist, _, _ = self.map.in_frustum(ids, frame.T_cw, self.camera)
            level = pts.predict_level(ids, dist, self.map.scale_factor, self.map.n_levels)
            match = self._project_search(frame, pts.positions[ids], pts.descriptors[ids],
                                         cfg.prior_radius * self.map.scale_factor ** level, (level - 1, level + 1),
                                         cfg.local_ratio)
            rows = np.flatnonzero(match >= 0)
            if len(rows) >= cfg.reloc_min_matches:
                kps, pids = match[rows], ids[rows]
                keep = self._estimate_pose(frame, pts.positions[pids], kps, pts.probation[pids] == 0)
                shift, turn = pose_difference(frame.T_wc, invert(prior))
                if (int(keep.sum()) >= cfg.min_pose_inliers and shift <= cfg.prior_max_shift
                        and turn <= cfg.prior_max_turn_deg):
                    frame.point_ids[kps[keep]] = pids[keep]
                    return True
        return relocalize(frame, self.map, self.camera, self.cfg, near)

    def _vo_keypoints(self, last: Frame) -> np.ndarray:
        """Unmatched keypoints of ``last`` with depth, used as temporary points: all closer than ``close_depth``
        and at least the ``vo_points`` closest (ORB-SLAM2 ``UpdateLastFrame``)."""
        cand = np.flatnonzero(last.has_depth & (last.point_ids < 0))
        cand = cand[np.argsort(last.depth[cand], kind='stable')]
        n = max(self.cfg.vo_points, int((last.depth[cand] < self.cfg.close_depth).sum()))
        return cand[:n]

    def _track_reference_keyframe(self, frame: Frame) -> bool:
        """Match the reference keyframe's map points by descriptor and optimise from the last pose."""
        cfg, kf = self.cfg, self.reference_kf
        frame.point_ids[:] = -1
        kp_idx = np.flatnonzero(kf.point_ids >= 0)
        feats = frame.features
        matches, _ = match_mutual(kf.frame.features.descriptors[kp_idx], feats.descriptors, feats.distance,
                                  cfg.reference_ratio, cfg.threshold('strict_distance', feats.distance))
        if len(matches) < cfg.reference_min_matches:
            return False
        kps, pids = matches[:, 1], kf.point_ids[kp_idx[matches[:, 0]]]
        frame.T_cw = self.last_frame.T_cw.copy()
        pts = self.map.points
        keep = self._estimate_pose(frame, pts.positions[pids], kps, pts.probation[pids] == 0)
        frame.point_ids[kps[keep]] = pids[keep]
        return int(keep.sum()) >= cfg.min_pose_inliers

    def _estimate_pose(self, frame: Frame, points_w: np.ndarray, kps: np.ndarray, trusted: np.ndarray) -> np.ndarray:
        """Optimise ``frame.T_cw`` (the initial guess) against M matches of world points ``points_w`` (M, 3) to
        keypoints ``kps`` (M,) and return (M,) bool, the matches consistent with the result (``_consistent``).

        The pose comes from the ``trusted`` (M,) matches alone when there are ``confirm_min_matches`` of them; else
        from those plus the matches that agree with the initial guess within the ``prior_gate``, when that makes
        ``confirm_min_matches``; else from all of them.
        """
        use = trusted
        if int(use.sum()) < self.cfg.confirm_min_matches:
            use = trusted | self._consistent(frame, points_w, kps, self.cfg.prior_gate)
        if int(use.sum()) < self.cfg.confirm_min_matches:
            use = np.ones(len(kps), bool)
        kp = kps[use]
        frame.T_cw = optimize_pose(frame.T_cw, points_w[use], frame.keypoints_un[kp], frame.u_right[kp],
                                   frame.inv_sigma2[kp], self.camera).T_cw
        return self._consistent(frame, points_w, kps)

    def _consistent(self, frame: Frame, points_w: np.ndarray, kps: np.ndarray, gate: float = 1.0) -> np.ndarray:
        """(M,) bool: world points (M, 3) whose reprojection into ``frame`` passes the chi-square test (thresholds
        times ``gate``) at its keypoints ``kps`` (M,) and whose depth agrees with the keypoint's measured depth
        (tolerance times ``gate``), where there is one."""
        points_c = points_w @ frame.T_cw[:3, :3].T + frame.T_cw[:3, 3]
        ok = points_c[:, 2] > 1e-6
        u_right = frame.u_right[kps[ok]]
        error, _ = project_residuals(points_c[ok], frame.keypoints_un[kps[ok]], u_right, self.camera,
                                     with_jacobian=False)
        ok[ok] = frame.inv_sigma2[kps[ok]] * (error * error).sum(1) <= gate * chi2_thresholds(u_right)
        depth = frame.depth[kps]
        tolerance = gate * (self.cfg.depth_tolerance + self.cfg.depth_tolerance_ratio * depth)
        return ok & ((depth <= 0) | (np.abs(depth - points_c[:, 2]) <= tolerance))

    def _local_keyframes(self, frame: Frame) -> list[int]:
        """Keyframes observing the frame's matches (most shared first), each followed by its best covisible
        keyframe not yet included (ORB-SLAM2 ``UpdateLocalKeyFrames``); also sets ``reference_kf``."""
        counts: Counter[int] = Counter()
        for pid in frame.point_ids[frame.point_ids >= 0].tolist():
            counts.update(self.map.points.observations[pid].keys())
        if not counts:
            return []
        cap = self.cfg.local_max_keyframes
        local = [k for k, _ in counts.most_common(cap)]
        self.reference_kf = self.map.keyframes[local[0]]
        included = set(local)
        for k in local[:cap]:
            if len(local) >= cap:
                break
            for neighbour in self.map.covisible(k, self.cfg.local_covisible):
                if neighbour not in included:
                    local.append(neighbour)
                    included.add(neighbour)
                    break
        return local

    def _track_local_map(self, frame: Frame) -> bool:
        """Search the local map's points by projection, optimise the pose and count the inliers."""
        cfg, pts = self.cfg, self.map.points
        local = self._local_keyframes(frame)
        if not local:
            return False
        matched = frame.point_ids[frame.point_ids >= 0]
        pts.visible[matched] += 1
        ids = np.setdiff1d(self.map.points_of(local), matched, assume_unique=True)
        ids, dist, view_cos, _ = self.map.in_frustum(ids, frame.T_cw, self.camera)
        pts.visible[ids] += 1
        level = pts.predict_level(ids, dist, self.map.scale_factor, self.map.n_levels)
        recent = frame.id < self.last_reloc_frame_id + cfg.local_reloc_frames
        th = cfg.local_radius_reloc if recent else cfg.local_radius
        radius = th * np.where(view_cos > cfg.local_frontal_cos, cfg.local_radius_frontal, cfg.local_radius_oblique)
        radius *= self.map.scale_factor ** level
        match = self._project_search(frame, pts.positions[ids], pts.descriptors[ids], radius, (level - 1, level),
                                     cfg.local_ratio)
        found = match >= 0
        frame.point_ids[match[found]] = ids[found]
        kps = frame.matched()
        pids = frame.point_ids[kps]
        consistent = self._estimate_pose(frame, pts.positions[pids], kps, pts.probation[pids] == 0)
        frame.point_ids[kps[~consistent]] = -1
        self._review_probation(pids, consistent)
        self.n_inliers = int(consistent.sum())
        pts.found[pids[consistent]] += 1
        recent_reloc = frame.id < self.last_reloc_frame_id + cfg.keyframe_max_frames
        return self.n_inliers >= (cfg.reloc_min_inliers if recent_reloc else cfg.local_min_inliers)

    def _review_probation(self, pids: np.ndarray, consistent: np.ndarray) -> None:
        """Count the observations (M,) of points ``pids`` (M,) that are on probation: a ``consistent`` one brings
        the point closer to being trusted, an inconsistent one is a strike; erase points with too many strikes."""
        pts = self.map.points
        on = pts.probation[pids] > 0
        pts.probation[pids[on & consistent]] -= 1
        struck = pids[on & ~consistent]
        pts.strikes[struck] += 1
        self.map.erase_points(struck[pts.strikes[struck] >= self.cfg.probation_strikes])

    def _need_keyframe(self, frame: Frame) -> bool:
        """ORB-SLAM2 ``NeedNewKeyFrame`` for RGB-D.

        A keyframe is due, once ``keyframe_min_frames`` frames passed since the last one, when ORB-SLAM2's condition
        ``c2`` holds: few inliers compared with the reference keyframe's well-observed points, or few tracked close
        points with many untracked ones, and more than ``keyframe_min_inliers`` inliers. When local mapping runs in
        its thread (``rapnet_loc.slam.mapping_thread``) and ``keyframe_queue`` keyframes wait already, the keyframe
        is refused as ORB-SLAM2 refuses it (the next frame asks again), unless tracking is weak (ORB-SLAM2's
        ``c1c``: inliers under ``keyframe_weak_ratio`` of those points, or the close-points condition): then
        tracking waits until local mapping takes one (its bundle adjustment is interrupted first). Refusing every
        keyframe of a full queue left fast motion with too few keyframes to track on a loaded machine; waiting for
        every one made frames wait for local mapping for 100-200 ms at 10 Hz. Map sizes are those of the reference
        keyframe's map.
        """
        cfg = self.cfg
        active = self.reference_kf.map_id
        n_kfs = sum(kf.map_id == active for kf in self.map.keyframes.values())
        if frame.id < self.last_reloc_frame_id + cfg.keyframe_max_frames and n_kfs > cfg.keyframe_max_frames:
            return False
        if frame.id < self.last_kf_frame_id + cfg.keyframe_min_frames:
            return False
        min_kfs = 1 if n_kfs <= 2 else cfg.keyframe_min_observations
        ref_ids = self.reference_kf.point_ids[self.reference_kf.point_ids >= 0]
        n_ref = int((self.map.points.n_obs[ref_ids] >= min_kfs).sum())
        close = frame.has_depth & (frame.depth < cfg.close_depth)
        tracked_close = int((close & (frame.point_ids >= 0)).sum())
        untracked_close = int((close & (frame.point_ids < 0)).sum())
        need_close = tracked_close < cfg.keyframe_close_tracked and untracked_close > cfg.keyframe_close_untracked
        ref_ratio = cfg.keyframe_ref_ratio_single if n_kfs < 2 else cfg.keyframe_ref_ratio
        if not (self.n_inliers < ref_ratio * n_ref or need_close) or self.n_inliers <= cfg.keyframe_min_inliers:
            return False
        weak = self.n_inliers < cfg.keyframe_weak_ratio * n_ref or need_close
        if not weak and self.local_mapping.n_queued >= cfg.keyframe_queue:
            self.refused_keyframes += 1
            return False
        self.local_mapping.wait_for_room(cfg.keyframe_queue)
        return True

    def _create_keyframe(self, frame: Frame) -> None:
        """Insert ``frame`` as a keyframe with new points from the depth of its unmatched keypoints: all closer
        than ``close_depth`` and at least the ``new_points_min`` closest."""
        kf = self.map.add_keyframe(frame)
        cand = np.flatnonzero(frame.has_depth & (frame.point_ids < 0))
        cand = cand[np.argsort(frame.depth[cand], kind='stable')]
        n = max(self.cfg.new_points_min, int((frame.depth[cand] < self.cfg.close_depth).sum()))
        ids = self._create_points(kf, cand[:n])
        frame.point_ids[cand[:n]] = ids
        self.local_mapping.process(kf, ids)
        frame.T_cw = kf.T_cw.copy()
        self.reference_kf = kf
        self.last_kf_frame_id = frame.id

    def _create_points(self, kf: KeyFrame, kp_index: np.ndarray) -> np.ndarray:
        """Map points (on probation) from the depth of keypoints ``kp_index`` (k,) of ``kf``; their ids (k,)."""
        ids = self.map.create_points(kf, kp_index)
        self.map.points.probation[ids] = self.cfg.confirm_observations
        return ids
