"""Configuration of the RGB-D front end: ``SlamConfig`` (YAML-loadable) with tracking and local-mapping sections.

Defaults follow ORB-SLAM2's RGB-D tracker and its TUM settings (``bf = 40``, close-depth threshold 40 baselines).
A YAML file holds any subset::

    features: {name: orb, conf: {max_keypoints: 1000}}
    place_recognition: {name: bow, conf: {n_words: 512}}
    pose_estimator: {name: NAME, conf: {}}
    tracking: {motion_radius: 15, strict_distance: {l2: 0.5}}
    local_mapping: {ba_window: 10}

Descriptor thresholds (``max_distance``, ``strict_distance``) and the relocalization ratio test (``reloc_ratio``)
are given per descriptor metric, ``hamming`` (bits of a packed binary descriptor: ORB-SLAM2's 100 / 50 of 256) and
``l2`` (Euclidean distance of L2-normalised float descriptors, RaP-Net's, XFeat's and other learned ones, in
[0, 2]); a mapping in the YAML replaces only the metrics it names.
The ``l2`` defaults were chosen on 7-Scenes redkitchen frames 0-199 (``benchmarks/bench_thresholds.py``):
``strict_distance`` keeps the share of RaP-Net's correct matches that ORB's 50 bits keep of ORB's, and
``max_distance`` lets through the share of descriptor pairs of unrelated keypoints that ORB's 100 bits let through.
The ``l2`` ``reloc_ratio`` (1.0: mutual nearest neighbours without a ratio test, as XFeat's authors match) was
chosen on 7-Scenes redkitchen with a map of frames 0-174 and queries 175-349 (BENCHMARKS.md, session 21): ORB-SLAM2's
0.75 rejected most correct matches of XFeat's 64-D descriptors. It was chosen on XFeat alone; RaP-Net loses 6 of
its 33 localized dev-split frames with it (``reloc_ratio: {l2: 0.75}`` keeps the old value).
"""
from __future__ import annotations

import copy
import math
import os
from dataclasses import MISSING, asdict, dataclass, field, fields

from rapnet_loc.errors import ConfigError
from rapnet_loc.features.base import DISTANCES
from rapnet_loc.io.yamlfile import read_yaml_mapping


@dataclass
class TrackingConfig:
    """Tracking thresholds (pixels, metres, descriptor distances per metric; counts of matches or frames).

    Attributes:
        bf: virtual stereo baseline times fx (pixel-metres) of the right-coordinate residual.
        depth_min, depth_max: valid keypoint depth range (m).
        close_depth: depth (m) below which a keypoint counts as close (ORB-SLAM2 ``ThDepth``).
        init_min_points: keypoints with depth needed to initialise the map.
        max_distance: largest descriptor distance of a projection match (ORB-SLAM2 ``TH_HIGH``), per metric.
        strict_distance: largest descriptor distance of a descriptor-only match (``TH_LOW``), per metric.
        motion_radius, motion_ratio, motion_min_matches: motion-model search (radius at level 0, ratio test,
            matches needed; the radius grows by ``motion_radius_retry`` once when too few are found).
        vo_points: keypoints of the last frame back-projected as temporary points for the motion model
            (the closest ones; at least this many, and all closer than ``close_depth``).
        reference_ratio, reference_min_matches: mutual-NN ratio and matches needed against the reference keyframe.
        min_pose_inliers: inliers needed after the motion-model or reference-keyframe pose optimisation.
        local_radius, local_ratio: local-map search (radius factor, ratio test); local_radius_reloc replaces
            local_radius for the ``local_reloc_frames`` frames after a relocalization. The radius is further
            multiplied by ``local_radius_frontal`` for points seen within ``arccos(local_frontal_cos)`` of their
            mean viewing direction, by ``local_radius_oblique`` otherwise (ORB-SLAM2 ``RadiusByViewingCos``).
        local_min_inliers: inliers needed after the local-map optimisation.
        local_max_keyframes, local_covisible: size of the local map (keyframes; best covisibles per keyframe).
        reloc_candidates, reloc_ratio, reloc_min_matches, reloc_min_inliers, reloc_radius: relocalization
            (candidate keyframes tried, ratio test per metric, descriptor matches needed, inliers needed, projection
            radius of the second search); reloc_pnp_iterations: RANSAC iterations of its PnP.
        reloc_depth_tolerance, reloc_max_violations: the depth check of a relocalized pose against its candidate
            keyframe (``relocalization.depths_agree``): depths agree within this fraction; at most this fraction of
            the compared points may violate free space.
        keyframe_max_frames: frames after a relocalization without keyframes once the map has more keyframes
            than this (ORB-SLAM2 ``mMaxFrames``, the frame rate); also how long a relocalized frame needs
            ``reloc_min_inliers``.
        keyframe_min_frames: frames at least between keyframes.
        keyframe_queue: keyframes waiting at most for local mapping when it runs in its thread (ORB-SLAM2's 3 for
            RGB-D). With the queue full, a keyframe is refused, as in ORB-SLAM2, unless tracking is weak (fewer
            inliers than ``keyframe_weak_ratio`` of the reference keyframe's well-observed points, or the close
            points condition below): then tracking waits for room.
        keyframe_weak_ratio: ORB-SLAM2's 0.25 of its condition ``c1c``.
        keyframe_ref_ratio: insert when tracked inliers fall below this fraction of the reference keyframe's
            well-observed points (points observed by ``keyframe_min_observations`` keyframes, one while the map has
            at most two); keyframe_ref_ratio_single replaces it while the map has a single keyframe.
        keyframe_min_inliers: a keyframe is inserted only when more inliers than this were tracked.
        keyframe_close_tracked, keyframe_close_untracked: insert when fewer close points are tracked and more
            close keypoints are untracked than these.
        new_points_min: closest keypoints with depth turned into map points by a new keyframe (at least; plus all
            closer than ``close_depth``).
        max_motion_gap_s: longest stamp gap (s) over which the motion model measures or extrapolates the velocity;
            after a longer gap, or when stamps go backwards, it predicts no motion.
        new_sequence_gap_s: a stamp more than this many seconds after or before the previous frame's starts a new
            sequence (another recording, e.g. the next bag of an OpenLORIS scene played to the nodes, or a robot
            carried away while the camera was off): the front end counts itself lost and relocalizes first
            (``Tracking.new_sequence``).
        new_map_after_s: in mapping mode, after this many seconds lost (relocalization failing on every frame) the
            front end starts a new map at the current frame (ORB-SLAM3's Atlas), anchored at the pose wheel odometry
            predicts when there is odometry; ``.inf`` never starts one (it stays lost until it relocalizes).
        odom_bridge_s: with wheel odometry, a lost frame up to this many seconds after the last tracked one gets
            the pose the odometry predicts from it (state ``bridged``; ``Tracking.bridge``).
        merge_min_inliers, merge_consistent, merge_max_shift, merge_max_turn_deg: map merging
            (``rapnet_loc.slam.merging``): inliers a new keyframe needs against a keyframe of another map, after
            relocalization's checks, and keyframes in a row that must find the same two maps with transforms that
            agree within this many metres and degrees. merge_window, merge_window_radius, merge_window_angle_deg:
            the depth check of a merge (``MapMerging._window_agrees``): the newest keyframes of the detecting map
            checked, each against the other map's nearest keyframe within this radius (metres) and angle between
            optical axes (degrees).
        odom_gate_shift, odom_gate_drift, odom_gate_turn_deg: with wheel odometry, a pose relocalized within a
            sequence, or a merge of a map anchored by odometry, must lie within ``odom_gate_shift`` metres plus
            ``odom_gate_drift`` times the distance the odometry travelled since the last tracked frame, and within
            ``odom_gate_turn_deg`` degrees, of where the odometry puts it (``rapnet_loc.slam.tracking``).
        confirm_observations, confirm_min_matches, probation_strikes: moving objects. A map point created by
            tracking is on probation until it has been observed consistently (pose inlier, depth consistent) in
            ``confirm_observations`` later frames, and is erased after ``probation_strikes`` inconsistent ones.
            Poses are estimated from the trusted points' matches only, the others being classified against the
            result, whenever there are at least ``confirm_min_matches`` of them; otherwise the matches that agree
            with the predicted pose within ``prior_gate`` times the chi-square thresholds and depth tolerance
            join them.
        depth_tolerance, depth_tolerance_ratio: a keypoint's depth is consistent with its map point when they differ
            by at most ``depth_tolerance + depth_tolerance_ratio * depth`` metres.
        prior_radius, prior_max_angle_deg, prior_max_shift, prior_max_turn_deg: a pose from outside (see
            ``rapnet_loc.slam.tracking``) seeds a projection search of the points of the keyframes looking within
            ``prior_max_angle_deg`` of it, radius ``prior_radius`` pixels at level 0; the pose found is kept only
            within ``prior_max_shift`` metres and ``prior_max_turn_deg`` degrees of the prior (the gate). The same
            keyframes, nearest first, are the relocalization candidates when that search fails.
    """

    bf: float = 40.0
    depth_min: float = 0.1
    depth_max: float = 10.0
    close_depth: float = 3.05
    init_min_points: int = 100
    max_distance: dict = field(default_factory=lambda: {'hamming': 100.0, 'l2': 1.13})
    strict_distance: dict = field(default_factory=lambda: {'hamming': 50.0, 'l2': 0.55})
    motion_radius: float = 15.0
    motion_radius_retry: float = 2.0
    motion_ratio: float = 0.9
    motion_min_matches: int = 20
    vo_points: int = 100
    reference_ratio: float = 0.7
    reference_min_matches: int = 15
    min_pose_inliers: int = 10
    local_radius: float = 3.0
    local_radius_reloc: float = 5.0
    local_reloc_frames: int = 2
    local_frontal_cos: float = 0.998
    local_radius_frontal: float = 2.5
    local_radius_oblique: float = 4.0
    local_ratio: float = 0.8
    local_min_inliers: int = 30
    local_max_keyframes: int = 80
    local_covisible: int = 10
    reloc_candidates: int = 10
    reloc_ratio: dict = field(default_factory=lambda: {'hamming': 0.75, 'l2': 1.0})
    reloc_min_matches: int = 15
    reloc_min_inliers: int = 50
    reloc_radius: float = 10.0
    reloc_pnp_iterations: int = 100
    reloc_depth_tolerance: float = 0.1
    reloc_max_violations: float = 0.35
    keyframe_max_frames: int = 30
    keyframe_min_frames: int = 0
    keyframe_queue: int = 3
    keyframe_weak_ratio: float = 0.25
    keyframe_ref_ratio: float = 0.75
    keyframe_ref_ratio_single: float = 0.4
    keyframe_min_observations: int = 2
    keyframe_min_inliers: int = 15
    keyframe_close_tracked: int = 100
    keyframe_close_untracked: int = 70
    new_points_min: int = 100
    max_motion_gap_s: float = 1.0
    new_sequence_gap_s: float = 30.0
    new_map_after_s: float = 1.0
    odom_bridge_s: float = 2.0
    merge_min_inliers: int = 80
    merge_consistent: int = 3
    merge_max_shift: float = 0.1
    merge_max_turn_deg: float = 5.0
    merge_window: int = 10
    merge_window_radius: float = 1.0
    merge_window_angle_deg: float = 45.0
    odom_gate_shift: float = 0.3
    odom_gate_drift: float = 0.1
    odom_gate_turn_deg: float = 15.0
    confirm_observations: int = 3
    confirm_min_matches: int = 20
    probation_strikes: int = 2
    prior_gate: float = 3.0
    depth_tolerance: float = 0.03
    depth_tolerance_ratio: float = 0.03
    prior_radius: float = 20.0
    prior_max_angle_deg: float = 60.0
    prior_max_shift: float = 0.5
    prior_max_turn_deg: float = 20.0

    def threshold(self, name: str, metric: str) -> float:
        """Descriptor threshold ``name`` (``'max_distance'``, ``'strict_distance'`` or ``'reloc_ratio'``) for
        descriptors compared by ``metric`` (``'hamming'`` or ``'l2'``)."""
        return getattr(self, name)[metric]


@dataclass
class LocalMappingConfig:
    """Local mapping after each new keyframe.

    Attributes:
        cull_found_ratio: a recent point found in fewer than this fraction of the frames that saw it is culled.
        cull_min_keyframes: a point created this many keyframes ago must be observed by 2 keyframes or is culled.
        triangulation_neighbours: best covisible keyframes a new keyframe triangulates new points with
            (ORB-SLAM2 uses 10 for RGB-D; 0 disables triangulation).
        triangulation_ratio: nearest-neighbour ratio test of the epipolar matching.
        ba_window: keyframes optimised by local bundle adjustment (0 disables it).
        ba_iterations: Gauss-Newton iterations of local bundle adjustment.
        cull_keyframes: erase redundant keyframes (``cull_keyframe_ratio`` of their close points seen by 3 other
            keyframes at a similar scale; ORB-SLAM2 ``KeyFrameCulling``).
    """

    cull_found_ratio: float = 0.25
    cull_min_keyframes: int = 2
    triangulation_neighbours: int = 10
    triangulation_ratio: float = 0.8
    ba_window: int = 10
    ba_iterations: int = 5
    cull_keyframes: bool = True
    cull_keyframe_ratio: float = 0.9


@dataclass
class SlamConfig:
    """Feature extractor, place recognizer and pose estimator (registry names and options; no pose estimator when
    ``pose_estimator`` is empty) and the tracking/local-mapping settings."""

    features: str = 'orb'
    feature_conf: dict = field(default_factory=dict)
    place_recognition: str = 'bow'
    place_recognition_conf: dict = field(default_factory=dict)
    pose_estimator: str = ''
    pose_estimator_conf: dict = field(default_factory=dict)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    local_mapping: LocalMappingConfig = field(default_factory=LocalMappingConfig)

    @classmethod
    def from_dict(cls, data: dict | None, source: str = '<dict>') -> SlamConfig:
        """Parse the YAML layout of the module doc; unknown sections or keys raise ConfigError."""
        data = dict(data or {})
        _check_keys(data, {*COMPONENTS, 'tracking', 'local_mapping'}, source)
        components = {}
        for section, (default, name_field, conf_field) in COMPONENTS.items():
            value = data.get(section) or {}
            if not isinstance(value, dict):
                raise ConfigError(f'{source} [{section}] must be a mapping {{name: NAME, conf: {{...}}}}, got '
                                  f'{value!r}')
            _check_keys(value, {'name', 'conf'}, f'{source} [{section}]')
            conf = value.get('conf') or {}
            if not isinstance(conf, dict):
                raise ConfigError(f'{source} [{section}] conf must be a mapping, got {conf!r}')
            components[name_field] = str(value.get('name') or default)
            components[conf_field] = dict(conf)
        return cls(**components, tracking=_section(TrackingConfig, data.get('tracking'), f'{source} [tracking]'),
                   local_mapping=_section(LocalMappingConfig, data.get('local_mapping'),
                                          f'{source} [local_mapping]'))

    @classmethod
    def load(cls, path: str | os.PathLike) -> SlamConfig:
        """Read a YAML configuration file."""
        return cls.from_dict(read_yaml_mapping(path, ConfigError, 'configuration file'), str(path))

    @classmethod
    def resolve(cls, path: str | os.PathLike | None, features: str | None = None,
                place_recognition: str | None = None, pose_estimator: str | None = None) -> SlamConfig:
        """The configuration of ``path`` (defaults when None) with ``override`` applied: what ``--config``,
        ``--features``, ``--place-recognition`` and ``--estimator`` select."""
        return (cls.load(path) if path else cls()).override(features, place_recognition, pose_estimator)

    def override(self, features: str | None = None, place_recognition: str | None = None,
                 pose_estimator: str | None = None) -> SlamConfig:
        """A copy with the extractor, place recognizer or pose estimator replaced by the one named (with its
        default options) where that is another one; None keeps the configuration's."""
        config = copy.deepcopy(self)
        for section, name in (('features', features), ('place_recognition', place_recognition),
                              ('pose_estimator', pose_estimator)):
            _, name_field, conf_field = COMPONENTS[section]
            if name and name != getattr(config, name_field):
                setattr(config, name_field, name)
                setattr(config, conf_field, {})
        return config

    def as_dict(self) -> dict:
        """The configuration in the YAML layout that ``from_dict`` reads."""
        out = {section: {'name': getattr(self, name_field), 'conf': dict(getattr(self, conf_field))}
               for section, (_, name_field, conf_field) in COMPONENTS.items()}
        return {**out, 'tracking': asdict(self.tracking), 'local_mapping': asdict(self.local_mapping)}


# YAML section -> (default name, SlamConfig fields of the name and of the options)
COMPONENTS = {'features': ('orb', 'features', 'feature_conf'),
              'place_recognition': ('bow', 'place_recognition', 'place_recognition_conf'),
              'pose_estimator': ('', 'pose_estimator', 'pose_estimator_conf')}


def _check_keys(data: dict, known: set[str], where: str) -> None:
    if unknown := sorted(set(data) - known):
        raise ConfigError(f"unknown key(s) {', '.join(map(str, unknown))} in {where}; "
                          f"valid keys: {', '.join(sorted(known))}")


def _number(value, integer: bool, where: str, key: str) -> float | int:
    """``value`` as a finite number >= 0 (a whole one when ``integer``); ConfigError naming ``where`` and ``key``
    otherwise. Every number of the tracking and local-mapping sections is a count, a distance, a ratio, an angle or
    a time: none is negative."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f'invalid value in {where}: {key} must be a number, got {value!r}')
    if not math.isfinite(value) or value < 0:
        raise ConfigError(f'invalid value in {where}: {key} must be finite and >= 0, got {value!r}')
    if integer and value != int(value):
        raise ConfigError(f'invalid value in {where}: {key} must be a whole number, got {value!r}')
    return int(value) if integer else float(value)


def _section(cls: type, data, where: str):
    """Dataclass ``cls`` from a mapping: each value checked (``_number``) and converted to the type of the field's
    default (a per-metric mapping, a field whose default is a dict, merged over its default)."""
    if data is not None and not isinstance(data, dict):
        raise ConfigError(f'{where} must be a mapping of settings (key: value), got {data!r}')
    data = dict(data or {})
    defaults = {f.name: f.default if f.default is not MISSING else f.default_factory() for f in fields(cls)}
    _check_keys(data, set(defaults), where)
    values = {}
    for k, v in data.items():
        default = defaults[k]
        if isinstance(default, bool):
            if not isinstance(v, bool):
                raise ConfigError(f'invalid value in {where}: {k} must be true or false, got {v!r}')
            values[k] = v
        elif isinstance(default, dict):
            if not isinstance(v, dict):
                raise ConfigError(f'invalid value in {where}: {k} is given per descriptor metric, e.g. '
                                  f'{{hamming: 50, l2: 0.55}}; got {v!r}')
            _check_keys(v, set(DISTANCES), f'{where} {k}')
            values[k] = {**default, **{m: _number(x, False, where, f'{k}.{m}') for m, x in v.items()}}
        else:
            values[k] = _number(v, isinstance(default, int), where, k)
    return cls(**values)
