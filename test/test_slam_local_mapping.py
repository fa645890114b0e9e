"""Local mapping's new points and keyframe culling (rapnet_loc.slam.triangulation, rapnet_loc.slam.local_mapping).

Triangulation is checked on exact two-view geometry (points and poses drawn at random, pixels with noise); keyframe
culling on a short synthetic sequence tracked with a keyframe at almost every frame, so that most are redundant.
"""
from dataclasses import replace

import numpy as np
import pytest
from synthscene import office_frames

from rapnet_loc.geometry import invert
from rapnet_loc.slam import SlamConfig, System
from rapnet_loc.slam.camera import Camera
from rapnet_loc.slam.map_io import load_map
from rapnet_loc.slam.triangulation import View, epipolar_match, triangulate

CAMERA = Camera(525.0, 525.0, 319.5, 239.5, 640, 480)
SCALE = 1.2


def pose(x, yaw_deg):
    """(4, 4) camera-to-world pose ``x`` metres along the world x axis, turned ``yaw_deg`` about the y axis."""
    c, s = np.cos(np.radians(yaw_deg)), np.sin(np.radians(yaw_deg))
    T = np.eye(4)
    T[:3, :3] = [[c, 0, s], [0, 1, 0], [-s, 0, c]]
    T[0, 3] = x
    return T


def two_views(T2_wc, depth_in_first=False, seed=0, n=300):
    """Random world points seen by a camera at the origin and one at ``T2_wc``; (points (M, 3), View 1, View 2),
    row i of both views observing point i with the same descriptor."""
    rng = np.random.default_rng(seed)
    points = np.c_[rng.uniform(-1.5, 1.5, n), rng.uniform(-1, 1, n), rng.uniform(2, 5, n)]
    T_cw = [np.eye(4), invert(T2_wc)]
    uv = [CAMERA.project(points @ T[:3, :3].T + T[:3, 3]) + rng.normal(0, 0.3, (n, 2)) for T in T_cw]
    seen = CAMERA.in_image(uv[0]) & CAMERA.in_image(uv[1])
    points, uv = points[seen], [u[seen] for u in uv]
    m = len(points)
    descriptors = rng.integers(0, 256, (m, 32), dtype=np.uint8)
    depth = points[:, 2] if depth_in_first else np.zeros(m)
    u_right = np.where(depth > 0, uv[0][:, 0] - CAMERA.bf / np.where(depth > 0, depth, 1), np.nan)
    v1 = View(T_cw[0], uv[0], u_right, depth, np.zeros(m, np.int16), descriptors)
    v2 = View(T_cw[1], uv[1], np.full(m, np.nan), np.zeros(m), np.zeros(m, np.int16), descriptors.copy())
    return points, v1, v2


def test_epipolar_matching_keeps_true_pairs_and_refuses_off_line_ones():
    points, v1, v2 = two_views(pose(0.3, 5))
    v2.uv[[0, 1]] = v2.uv[[1, 0]]          # keypoints 0 and 1 of view 2 swap places: their descriptors now lie
    pairs = epipolar_match(v1, v2, CAMERA, 'hamming', 50, 0.8, SCALE)
    assert np.all(pairs[:, 0] == pairs[:, 1])
    assert len(pairs) >= 0.95 * len(points) - 2 and not np.isin([0, 1], pairs[:, 0]).any()


def test_triangulated_points_lie_where_the_rays_meet():
    points, v1, v2 = two_views(pose(0.3, 5))
    pairs = np.repeat(np.arange(len(points))[:, None], 2, axis=1)
    ok, positions = triangulate(v1, v2, pairs, CAMERA, SCALE)
    error = np.linalg.norm(positions - points[ok], axis=1)
    # depth noise from 0.3 px on both images: z^2 / (f b) * 0.3 * sqrt(2), about 3 cm at the mean depth of 3.5 m
    assert ok.mean() > 0.9 and np.median(error) < 0.04 and error.max() < 0.3


def test_wrong_pairs_are_not_triangulated():
    points, v1, v2 = two_views(pose(0.3, 5))
    n = len(points)
    pairs = np.c_[np.arange(n), np.roll(np.arange(n), 7)]
    ok, _ = triangulate(v1, v2, pairs, CAMERA, SCALE)
    assert ok.mean() < 0.05


def test_low_parallax_points_come_from_the_measured_depth():
    points, v1, v2 = two_views(pose(0.02, 0), depth_in_first=True)
    pairs = np.repeat(np.arange(len(points))[:, None], 2, axis=1)
    ok, positions = triangulate(v1, v2, pairs, CAMERA, SCALE)
    assert ok.mean() > 0.9
    assert np.allclose(positions, CAMERA.backproject(v1.uv[ok], v1.depth[ok]), atol=1e-9)


FRAMES = 14
CONFIG = {'features': {'name': 'orb', 'conf': {'max_keypoints': 500}},
          'tracking': {'close_depth': 2.5, 'keyframe_ref_ratio': 0.99}}


@pytest.fixture(scope='module')
def sequence(tmp_path_factory):
    """Camera info and RGB-D frames of a short synthetic sequence (320x240, every challenge off) played forwards
    then backwards (stamps increasing at 30 Hz): the way back revisits every view of the way out."""
    camera, frames = office_frames(tmp_path_factory.mktemp('synth'), FRAMES)
    t0 = frames[0].stamp_ns
    return camera, [replace(f, stamp_ns=t0 + i * 33_333_333) for i, f in enumerate(frames + frames[::-1])]


def track(sequence, **local_mapping):
    """A keyframe at almost every frame (``keyframe_ref_ratio`` 0.99): (System, results)."""
    camera, frames = sequence
    system = System(camera, SlamConfig.from_dict({**CONFIG, 'local_mapping': local_mapping}))
    return system, [system.process(frame) for frame in frames]


def assert_consistent(slam_map):
    """Observations, keyframe associations and covisibility edges agree with each other."""
    pts = slam_map.points
    for kf in slam_map.keyframes.values():
        for i in np.flatnonzero(kf.point_ids >= 0).tolist():
            pid = kf.point_ids[i]
            assert not pts.bad[pid] and pts.observations[pid][kf.id] == i
    for pid, obs in enumerate(pts.observations):
        assert pts.n_obs[pid] == len(obs) and set(obs) <= set(slam_map.keyframes)
        assert all(slam_map.keyframes[k].point_ids[i] == pid for k, i in obs.items())
    assert set(slam_map.covisibility) == set(slam_map.keyframes)
    for k, edges in slam_map.covisibility.items():
        assert all(slam_map.covisibility[other][k] == w for other, w in edges.items())


@pytest.fixture(scope='module')
def uncull(sequence):
    """The sequence tracked without keyframe culling: (System, results)."""
    return track(sequence, cull_keyframes=False)


def test_redundant_keyframes_are_culled(sequence, uncull, tmp_path):
    # ORB-SLAM2's 0.9 needs its duplicate merging to be reached; the mechanism is the same at 0.75
    kept, results = track(sequence, cull_keyframe_ratio=0.75)
    everything, reference = uncull
    created = sum(r.keyframe for r in results)
    assert all(r.T_wc is not None for r in results + reference)
    assert created >= FRAMES and len(everything.map.keyframes) == sum(r.keyframe for r in reference)
    assert 0 in kept.map.keyframes and len(kept.map.keyframes) <= created - 5
    assert kept.tracking.local_mapping.n_culled_keyframes == created - len(kept.map.keyframes)
    assert_consistent(kept.map)
    drift = [np.linalg.norm(r.T_wc[:3, 3] - ref.T_wc[:3, 3]) for r, ref in zip(results, reference)]
    assert max(drift) < 0.03

    path = tmp_path / 'culled.map'
    assert sorted(kept.keyframe_db.recognizer.ids) == sorted(kept.map.keyframes), 'culled keyframes forgotten'
    kept.save_map(path)
    loaded = load_map(path).map
    assert list(loaded.keyframes) == list(kept.map.keyframes)
    assert_consistent(loaded)
    camera, frames = sequence
    assert System(camera, kept.config, slam_map=loaded).localize(frames[FRAMES // 2]).state == 'relocalized'


def test_new_keyframes_triangulate_and_fuse_points_with_their_neighbours(uncull):
    system, _ = uncull
    slam_map, pts = system.map, system.map.points
    alive = np.flatnonzero(~pts.bad)
    assert_consistent(slam_map)
    assert np.median(pts.n_obs[alive]) >= 3
    assert system.tracking.local_mapping.n_triangulated > 20


@pytest.mark.filterwarnings('error')      # a division by log(1) = 0 would warn
def test_single_scale_features_track(sequence):
    """An extractor without a pyramid (scale factor 1, one level, as RaP-Net) predicts level 0 for every point."""
    camera, frames = sequence
    config = SlamConfig.from_dict({'features': {'name': 'orb', 'conf': {'max_keypoints': 500, 'n_levels': 1,
                                                                        'scale_factor': 1.0}},
                                   'tracking': {'close_depth': 2.5}})
    system = System(camera, config)
    results = [system.process(frame) for frame in frames]
    assert all(r.state == 'ok' for r in results)
    pts = system.map.points
    assert np.all(pts.min_dist == pts.max_dist)
    ids = np.flatnonzero(~pts.bad)
    assert np.array_equal(pts.predict_level(ids, pts.max_dist[ids] * 0.5, 1.0, 1), np.zeros(len(ids)))
