"""Local mapping (ORB-SLAM2 ``LocalMapping``), run after each new keyframe: here and now (``process``), or step by
step in a thread of its own (``steps``, ``rapnet_loc.slam.mapping_thread``).

Steps: refresh the descriptors, normals and distance ranges of the points the keyframe observes; update its
covisibility edges; cull recently created points that tracking rarely finds or that no second keyframe observes;
triangulate new points with its best covisible keyframes (``rapnet_loc.slam.triangulation``); search the points
of those keyframes in its free keypoints and its points in theirs (ORB-SLAM2's fusion, without merging duplicates:
only keypoints without a point take one); local bundle adjustment of the keyframe, its best covisible keyframes
and the points they see, with the other keyframes that see those points held fixed (as is the first keyframe of each
map, its anchor); cull redundant covisible keyframes; re-fit what the place recognizer learns from the keyframes
when it is due (``PlaceRecognizer.background_fit``: a vocabulary learnt again as the map doubles), on a snapshot
without the map, so that no relocalization query waits for it.
"""
from __future__ import annotations

import contextlib
import threading
from typing import Any, Callable, ContextManager, Generator

import numpy as np

from rapnet_loc.features.matching import search_by_projection
from rapnet_loc.slam.camera import Camera
from rapnet_loc.slam.config import SlamConfig
from rapnet_loc.slam.map import KeyFrame, Map
from rapnet_loc.slam.optimizer import BundleProblem, bundle_adjust
from rapnet_loc.slam.triangulation import View, epipolar_match, reprojects, triangulate
from rapnet_loc.vpr.base import PlaceRecognizer

FUSE_RADIUS = 3.0          # pixels at level 0 of the projection search when fusing (ORB-SLAM2 ``Fuse``)
REDUNDANT_OBSERVERS = 3    # a point is redundant in a keyframe when this many others see it at a similar scale

Steps = Generator[Callable[[], Any] | None, Any, None]
"""Local mapping's work as steps (``LocalMapping.steps``): between two yields the map is in use; a yield hands over
None, or a callable to be run without the map (it works on copies), whose result is sent back."""


def drive(steps: Steps, lock: ContextManager = contextlib.nullcontext()) -> None:
    """Run ``steps`` to the end: each step with ``lock`` held, the callables it yields without it."""
    result = None
    while True:
        with lock:
            try:
                work = steps.send(result)
            except StopIteration:
                return
        result = None if work is None else work()


class LocalMapping:
    """Maintains ``slam_map`` around each new keyframe.

    Args:
        slam_map: the map.
        camera: the colour camera.
        config: the front end's settings: ``local_mapping`` (culling, triangulation, bundle adjustment) and from
            ``tracking`` the descriptor threshold ``strict_distance``, the probation of new points
            (``confirm_observations``) and ``close_depth``.
        distance: descriptor metric of the features (``'hamming'`` or ``'l2'``).
        recognizer: the keyframe database's place recognizer, re-fitted here when due (None: none).
    Attributes:
        strict_distance: descriptor threshold of the metric ``distance``.
        recent: ids of the recently created points, still subject to culling.
        n_triangulated, n_culled_keyframes: points created by triangulation and keyframes culled so far.
        abort_ba: set to end a running bundle adjustment early (ORB-SLAM2 ``InterruptBA``; it keeps the steps it
            made); cleared when the next one starts.
    """

    def __init__(self, slam_map: Map, camera: Camera, config: SlamConfig, distance: str,
                 recognizer: PlaceRecognizer | None = None):
        self.map = slam_map
        self.recognizer = recognizer
        self.camera = camera
        self.cfg = config.local_mapping
        self.tracking_cfg = config.tracking
        self.distance = distance
        self.strict_distance = config.tracking.threshold('strict_distance', distance)
        self.recent = np.zeros(0, np.int64)
        self.n_triangulated = 0
        self.n_culled_keyframes = 0
        self.abort_ba = threading.Event()

    def process(self, kf: KeyFrame, new_ids: np.ndarray) -> None:
        """Integrate keyframe ``kf``, which created the points ``new_ids``, here and now."""
        drive(self.steps(kf, new_ids))

    def wait_idle(self) -> None:
        """Return once every keyframe given to ``process`` is integrated: at once, here (``MappingThread`` runs
        local mapping in a thread of its own, with a queue)."""

    n_queued = 0
    """Keyframes waiting to be integrated: none, here."""

    def wait_for_room(self, limit: int) -> None:
        """Return once fewer than ``limit`` keyframes wait: at once, here, where none ever waits."""

    def steps(self, kf: KeyFrame, new_ids: np.ndarray) -> Steps:
        """``process`` as ``Steps``: tracking may use the map between them."""
        observed = kf.point_ids[kf.point_ids >= 0]
        old = np.setdiff1d(observed, new_ids)
        self.map.update_geometry(old)
        self.map.update_descriptors(old, self.distance)
        self.map.update_connections(kf)
        yield
        self._cull_points(kf)
        self.recent = np.concatenate([self.recent, new_ids, self._triangulate(kf)])
        yield
        self._fuse(kf)
        if self.cfg.ba_window > 0 and len(self.map.keyframes) > 1:
            yield
            yield from self._local_bundle_adjustment(kf)
        if self.cfg.cull_keyframes:
            yield
            self._cull_keyframes(kf)
        if self.recognizer is not None:
            yield
            learn = self.recognizer.background_fit()
            if learn is not None:
                install = yield learn
                install()

    def join_seam(self, kf: KeyFrame, match: KeyFrame) -> None:
        """After two maps merged where ``kf`` recognized ``match`` (``rapnet_loc.slam.merging``): ``kf`` and its
        best covisible keyframes and ``match`` and its best covisible keyframes search each other's points in
        their free keypoints; descriptors, geometry and covisibility are refreshed; local bundle adjustment around
        ``kf``."""
        slam_map, n = self.map, self.cfg.triangulation_neighbours
        slam_map.update_connections(kf)
        near = [kf, *(slam_map.keyframes[k] for k in slam_map.covisible(kf.id, n))]
        far = [match, *(slam_map.keyframes[k] for k in slam_map.covisible(match.id, n))]
        near_ids, far_ids = (slam_map.points_of([f.id for f in side]) for side in (near, far))
        touched = np.unique(np.concatenate([*(self._fuse_into(f, far_ids) for f in near),
                                            *(self._fuse_into(f, near_ids) for f in far)]))
        slam_map.update_descriptors(touched, self.distance)
        slam_map.update_geometry(touched)
        for changed in {f.id: f for f in (*near, *far)}.values():
            slam_map.update_connections(changed)
        if self.cfg.ba_window > 0:
            drive(self._local_bundle_adjustment(kf))

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

    def _triangulate(self, kf: KeyFrame) -> np.ndarray:
        """New points (on probation) from the free keypoints of ``kf`` and of each of its
        ``triangulation_neighbours`` best covisible keyframes that is at least the sensor's baseline away
        (ORB-SLAM2 ``CreateNewMapPoints``); their ids."""
        slam_map, tcfg = self.map, self.tracking_cfg
        baseline = self.camera.bf / self.camera.fx
        created = [np.zeros(0, np.int64)]
        for k in slam_map.covisible(kf.id, self.cfg.triangulation_neighbours):
            other = slam_map.keyframes[k]
            if np.linalg.norm(other.center - kf.center) < baseline:
                continue
            free1, free2 = np.flatnonzero(kf.point_ids < 0), np.flatnonzero(other.point_ids < 0)
            v1, v2 = _view(kf, free1), _view(other, free2)
            pairs = epipolar_match(v1, v2, self.camera, self.distance, self.strict_distance,
                                   self.cfg.triangulation_ratio, slam_map.scale_factor)
            ok, positions = triangulate(v1, v2, pairs, self.camera, slam_map.scale_factor)
            i, j = free1[pairs[ok, 0]], free2[pairs[ok, 1]]
            ids = slam_map.add_points(kf, i, positions)
            slam_map.add_observations(other, j, ids)
            slam_map.update_geometry(ids)
            slam_map.points.probation[ids] = tcfg.confirm_observations
            created.append(ids)
        created = np.concatenate(created)
        self.n_triangulated += len(created)
        return created

    def _fuse(self, kf: KeyFrame) -> None:
        """Observations between ``kf`` and its ``triangulation_neighbours`` best covisible keyframes: each one's
        points are searched in the other's free keypoints (ORB-SLAM2 ``SearchInNeighbors`` without merging);
        then the descriptors, geometry and covisibility edges are refreshed."""
        slam_map = self.map
        neighbours = [slam_map.keyframes[k] for k in slam_map.covisible(kf.id, self.cfg.triangulation_neighbours)]
        if not neighbours:
            return
        touched = [self._fuse_into(kf, np.unique(np.concatenate([nb.point_ids for nb in neighbours])))]
        own = kf.point_ids[kf.point_ids >= 0]
        touched += [self._fuse_into(nb, own) for nb in neighbours]
        touched = np.unique(np.concatenate(touched))
        slam_map.update_descriptors(touched, self.distance)
        slam_map.update_geometry(touched)
        for changed in (kf, *neighbours):
            slam_map.update_connections(changed)

    def _fuse_into(self, kf: KeyFrame, ids: np.ndarray) -> np.ndarray:
        """Let the free keypoints of ``kf`` observe the points ``ids`` (k,) that project near them with a close
        descriptor (``strict_distance``), at the predicted pyramid level or the one below, and that reproject
        within the chi-square thresholds; the ids of the points that gained an observation."""
        pts, frame = self.map.points, kf.frame
        ids = ids[(ids >= 0) & ~pts.bad[np.maximum(ids, 0)]]
        ids = np.setdiff1d(ids, kf.point_ids)
        ids, dist, _, uv = self.map.in_frustum(ids, kf.T_cw, self.camera)
        level = pts.predict_level(ids, dist, self.map.scale_factor, self.map.n_levels)
        feats = frame.features
        match, _ = search_by_projection(uv, pts.descriptors[ids], FUSE_RADIUS * self.map.scale_factor ** level,
                                        frame.keypoints_un, feats.descriptors, feats.distance,
                                        self.strict_distance, level_range=(level - 1, level),
                                        kp_levels=feats.levels, available=kf.point_ids < 0)
        found = np.flatnonzero(match >= 0)
        kps, ids = match[found], ids[found]
        ok = reprojects(_view(kf, kps), pts.positions[ids], np.arange(len(kps)), self.camera,
                        self.map.scale_factor)
        self.map.add_observations(kf, kps[ok], ids[ok])
        return ids[ok]

    def _cull_keyframes(self, kf: KeyFrame) -> None:
        """ORB-SLAM2 ``KeyFrameCulling``: erase each keyframe covisible with ``kf`` (the maps' anchors and keyframes
        newer than ``kf``, not integrated yet, excepted) for which more than ``cull_keyframe_ratio`` of its close
        points (depth up to ``close_depth``) are seen by at least 3 other keyframes at the same, finer or next coarser
        pyramid level."""
        slam_map = self.map
        anchors = slam_map.anchors
        for k in slam_map.covisible(kf.id):
            if k in anchors or k > kf.id:
                continue
            other = slam_map.keyframes[k]
            depth = other.frame.depth
            kps = np.flatnonzero((other.point_ids >= 0) & (depth > 0) & (depth <= self.tracking_cfg.close_depth))
            if len(kps) == 0:
                continue
            pids = other.point_ids[kps]
            pid, obs_kf, obs_kp = slam_map.observation_arrays(pids)
            level = np.array([slam_map.keyframes[o].frame.features.levels[i]
                              for o, i in zip(obs_kf.tolist(), obs_kp.tolist())], np.int64)
            order = np.argsort(pids)
            row = order[np.searchsorted(pids[order], pid)]       # (m,) the point of each observation, in kps
            similar = (obs_kf != k) & (level <= other.frame.features.levels[kps][row] + 1)
            observers = np.bincount(row, weights=similar, minlength=len(kps))
            if (observers >= REDUNDANT_OBSERVERS).sum() > self.cfg.cull_keyframe_ratio * len(kps):
                slam_map.erase_keyframe(k)
                self.n_culled_keyframes += 1

    def _local_bundle_adjustment(self, kf: KeyFrame) -> Steps:
        """Refine ``kf``, its ``ba_window - 1`` best covisible keyframes and the points they see; observations that
        fail the chi-square test afterwards are erased. Keyframes outside the window that see the points are held
        fixed, and so are the maps' anchors; when there is none, the window's least covisible keyframe is. Points
        seen by a single keyframe are left out: they carry no information on the poses. The solve runs on copies
        (a step without the map); points erased meanwhile keep their state."""
        slam_map, pts = self.map, self.map.points
        anchors = slam_map.anchors
        window = [k for k in [kf.id, *slam_map.covisible(kf.id, self.cfg.ba_window - 1)] if k not in anchors]
        ids = slam_map.points_of(window)
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
        self.abort_ba.clear()
        poses, points, inliers = yield lambda: bundle_adjust(problem, self.camera, self.cfg.ba_iterations,
                                                             self.abort_ba.is_set)
        for k, T in zip(window, poses[:len(window)]):
            slam_map.keyframes[k].T_cw = T
        alive = ~pts.bad[ids]
        pts.positions[ids[alive]] = points[alive]
        slam_map.erase_observations(pid[~inliers], kf_ids[~inliers])
        slam_map.update_geometry(ids[~pts.bad[ids]])


def _view(kf: KeyFrame, index: np.ndarray) -> View:
    """Keypoints ``index`` (k,) of ``kf`` for triangulation."""
    frame = kf.frame
    return View(kf.T_cw, frame.keypoints_un[index], frame.u_right[index], frame.depth[index],
                frame.features.levels[index], frame.features.descriptors[index])
