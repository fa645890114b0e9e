"""Map merging (ORB-SLAM3's Atlas merge, simplified for RGB-D): when a new keyframe of one map is recognized in
another map, the newer of the two moves into the older one's world frame and they become one map.

Detection, after each new keyframe while the map holds several maps: the place recognizer's candidates for the
keyframe that belong to other maps are tried as relocalization tries them (``relocalization.try_keyframe``:
mutual matches with the candidate's points, PnP RANSAC, pose optimisation and a projection search); the first that
leaves ``merge_min_inliers`` inliers gives the keyframe's pose in the other map and so the rigid transform between
the two world frames (depth fixes the scale: SE(3)). As in ORB-SLAM3, one detection is not enough: repeated
structure (identical doors, tiled floors) can match a keyframe to the wrong place with many inliers. The maps merge
once ``merge_consistent`` keyframes in a row (one keyframe without a detection is forgiven) found the same two maps
with transforms that agree within ``merge_max_shift`` metres and ``merge_max_turn_deg`` degrees, and the newest
keyframes of the detecting map, moved by that transform, agree in depth with the other map's keyframes near them
(``MapMerging.window_agrees``; ORB-SLAM3 likewise checks a merge against the candidate's covisible window).

Merge: ``Map.merge`` moves the newer map's keyframes and points with the last detection's transform; the last
keyframe's points that matched points of the other map are fused with them (``Map.replace_point``, the point with
more observations kept), its free keypoints observe the matched points, and local mapping joins the seam
(``LocalMapping.join_seam``: the keyframes on both sides search each other's points, covisibility, local bundle
adjustment around the keyframe).
"""
from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from rapnet_loc.geometry import invert, pose_difference
from rapnet_loc.slam.camera import Camera
from rapnet_loc.slam.config import TrackingConfig
from rapnet_loc.slam.local_mapping import LocalMapping
from rapnet_loc.slam.map import KeyFrame, Map
from rapnet_loc.slam.relocalization import CandidateFn, depth_conflicts_both, try_keyframe

LOG = logging.getLogger(__name__)


@dataclass
class Detection:
    """Keyframe ``kf_id`` of map ``kf_map`` recognized keyframe ``match_id`` of map ``match_map`` with ``inliers``
    inliers; ``S`` (4, 4) takes ``kf_map``'s world frame to ``match_map``'s."""

    kf_id: int
    kf_map: int
    match_id: int
    match_map: int
    S: np.ndarray
    inliers: int

    def agrees(self, other: Detection, max_shift: float, max_turn_deg: float) -> bool:
        """Same two maps, and transforms within ``max_shift`` metres and ``max_turn_deg`` degrees."""
        if (self.kf_map, self.match_map) != (other.kf_map, other.match_map):
            return False
        shift, turn = pose_difference(self.S, other.S)
        return shift <= max_shift and turn <= max_turn_deg


@dataclass
class Merge:
    """Map ``src`` moved into map ``dst`` (the older of the two) by ``S`` (4, 4), ``src``'s world frame to
    ``dst``'s; ``detections``: the keyframes that recognized it, the last one joined the seam."""

    src: int
    dst: int
    S: np.ndarray
    detections: list[Detection]


class MapMerging:
    """Detects places of another map from new keyframes and merges the maps (see the module doc).

    Args:
        slam_map, camera, cfg: the map, the colour camera and the tracking settings (``reloc_*`` for the
            recognition check, ``merge_*``).
        candidates: the place recognizer's candidate keyframes (``KeyFrameDatabase``).
        local_mapping: joins the seam after a merge.
    Attributes:
        pending: the consistent detections in a row so far.
        misses: keyframes in a row without a detection (one is forgiven, a second clears ``pending``).
        merges: the merges done.
    """

    def __init__(self, slam_map: Map, camera: Camera, cfg: TrackingConfig, candidates: CandidateFn,
                 local_mapping: LocalMapping):
        self.map, self.camera, self.cfg = slam_map, camera, cfg
        self.candidates, self.local_mapping = candidates, local_mapping
        self.pending: list[Detection] = []
        self.misses = 0
        self.merges: list[Merge] = []

    def process(self, kf: KeyFrame, gate: Callable[[Detection], bool] | None = None) -> Merge | None:
        """Look for another map's place in the new keyframe ``kf`` (detections that ``gate``, when given, accepts);
        merge when the detections agree."""
        found = self._recognize(kf, gate)
        if found is None:
            self.misses += 1
            if self.misses > 1:
                self.pending = []
            return None
        detection, matched = found
        self.misses = 0
        cfg = self.cfg
        if self.pending and not self.pending[-1].agrees(detection, cfg.merge_max_shift, cfg.merge_max_turn_deg):
            self.pending = []
        self.pending.append(detection)
        if len(self.pending) < cfg.merge_consistent:
            return None
        if not self.window_agrees(detection):
            self.pending = []
            return None
        return self._merge(kf, matched)

    def window_agrees(self, detection: Detection) -> bool:
        """Whether the newest ``merge_window`` keyframes of the detecting map, moved by the detection's transform,
        saw the same surfaces as the other map's keyframes nearest to them (within ``merge_window_radius`` metres,
        optical axes within ``merge_window_angle_deg``): ``relocalization.depth_conflicts_both``, summed over the
        pairs, leave at most ``reloc_max_violations`` of the compared points violating free space. Repeated
        structure fools the detecting keyframes; the rest of the room, seen by their neighbours, does not fit."""
        slam_map, cfg = self.map, self.cfg
        own = sorted((k for k in slam_map.keyframes.values() if k.map_id == detection.kf_map), key=lambda k: -k.id)
        others = [k for k in slam_map.keyframes.values() if k.map_id == detection.match_map]
        if not others:
            return True
        centers = np.array([k.center for k in others])
        axes = np.array([k.T_cw[2, :3] for k in others])
        agree = violate = 0
        for kf in own[:cfg.merge_window]:
            T_wc = detection.S @ kf.T_wc               # in the other map's world frame
            dist = np.linalg.norm(centers - T_wc[:3, 3], axis=1)
            facing = axes @ T_wc[:3, 2] >= np.cos(np.radians(cfg.merge_window_angle_deg))
            near = (dist <= cfg.merge_window_radius) & facing
            if not near.any():
                continue
            other = others[int(np.flatnonzero(near)[np.argmin(dist[near])])]
            a, v = depth_conflicts_both(kf.frame, other.frame, other.T_cw @ T_wc, self.camera, cfg)
            agree, violate = agree + a, violate + v
        if violate <= cfg.reloc_max_violations * (agree + violate):
            return True
        LOG.info('map %d not merged into map %d: its keyframes moved by the detections\' transform disagree in '
                 'depth with the other map (%d of %d points violate free space)', detection.kf_map,
                 detection.match_map, violate, agree + violate)
        return False

    def _recognize(self, kf: KeyFrame, gate: Callable[[Detection], bool] | None
                   ) -> tuple[Detection, np.ndarray] | None:
        """The first candidate keyframe of another map that ``kf`` relocalizes against with ``merge_min_inliers``
        inliers (and that ``gate`` accepts): the detection and the (N,) points of that map matched to ``kf``'s
        keypoints (-1: none)."""
        slam_map, cfg = self.map, self.cfg
        others = [c for c in self.candidates(slam_map, kf.frame, len(slam_map.keyframes)) if c.map_id != kf.map_id]
        probe = dataclasses.replace(kf.frame, point_ids=np.full(len(kf.frame), -1, np.int64), T_cw=None)
        for match in others[:cfg.reloc_candidates]:
            if try_keyframe(probe, match, slam_map, self.camera, cfg):
                inliers = int((probe.point_ids >= 0).sum())
                if inliers < cfg.merge_min_inliers:
                    continue
                S = invert(probe.T_cw) @ kf.T_cw          # kf's world frame -> match's world frame
                detection = Detection(kf.id, kf.map_id, match.id, match.map_id, S, inliers)
                if gate is None or gate(detection):
                    return detection, probe.point_ids.copy()
        return None

    def _merge(self, kf: KeyFrame, matched: np.ndarray) -> Merge:
        """Merge the two maps of the pending detections with the last one's transform, the newer map into the
        older; ``matched`` (N,): the other map's points matched to ``kf``'s keypoints. Local mapping first
        integrates its queue: a bundle adjustment running meanwhile would write poses back in the old frame."""
        self.local_mapping.wait_idle()
        last = self.pending[-1]
        if last.kf_map > last.match_map:
            merge = Merge(last.kf_map, last.match_map, last.S, self.pending)
        else:
            merge = Merge(last.match_map, last.kf_map, invert(last.S), self.pending)
        self.map.merge(merge.src, merge.dst, merge.S)
        _fuse_matches(kf, matched, self.map)
        self.local_mapping.join_seam(kf, self.map.keyframes[last.match_id])
        LOG.info('map %d merged into map %d: keyframes %s recognized keyframes %s (%s inliers)', merge.src,
                 merge.dst, [d.kf_id for d in self.pending], [d.match_id for d in self.pending],
                 [d.inliers for d in self.pending])
        self.pending, self.misses = [], 0
        self.merges.append(merge)
        return merge


def _fuse_matches(kf: KeyFrame, matched: np.ndarray, slam_map: Map) -> None:
    """Keypoints of ``kf`` matched to points ``matched`` (N,) (-1: none) of the other map: a free keypoint observes
    its match; a keypoint with a point of its own fuses the two."""
    pts = slam_map.points
    for i in np.flatnonzero(matched >= 0).tolist():
        other, own = int(matched[i]), int(kf.point_ids[i])
        if pts.bad[other] or own == other or kf.id in pts.observations[other]:
            continue
        if own < 0:
            slam_map.add_observations(kf, np.array([i]), np.array([other]))
        elif pts.n_obs[own] > pts.n_obs[other]:
            slam_map.replace_point(own, other)
        else:
            slam_map.replace_point(other, own)
