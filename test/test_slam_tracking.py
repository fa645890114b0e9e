"""RGB-D front end (rapnet_loc.slam) on real 7-Scenes redkitchen frames: tracking accuracy, losing track and
relocalizing, map consistency and configuration."""
import numpy as np
import plugins  # noqa: F401 (registers test_never_recognizes)
import pytest

from rapnet_loc.errors import ConfigError
from rapnet_loc.eval.tum import tum_metrics
from rapnet_loc.geometry import invert, rotation_angle
from rapnet_loc.io.sevenscenes import SevenScenesFolder
from rapnet_loc.io.trajectory import Trajectory
from rapnet_loc.io.types import CameraInfo
from rapnet_loc.slam import SlamConfig, System

LAST = 99


@pytest.fixture(scope='module')
def redkitchen(shared_data):
    """(frames 0..LAST as a list, camera info, depth intrinsics, ground-truth stamps and camera-to-world poses)."""
    path = shared_data / '7scenes-redkitchen-seq01-dev'
    folder = SevenScenesFolder(path, 0, LAST)
    depth_info = CameraInfo(640, 480, np.loadtxt(path / 'camera-intrinsics.txt'))
    return list(folder), folder.camera_info(), depth_info, *folder.poses()


def run(system, frames):
    return [system.process(frame) for frame in frames]


def ate(results, stamps, poses):
    tracked = [r for r in results if r.T_wc is not None]
    est = Trajectory.from_matrices([r.stamp_ns for r in tracked], np.array([r.T_wc for r in tracked]))
    return tum_metrics(est, Trajectory.from_matrices(stamps, poses))


@pytest.fixture(scope='module')
def tracked(redkitchen):
    frames, camera, depth_info, stamps, poses = redkitchen
    system = System(camera, depth_info=depth_info)
    return system, run(system, frames)


def test_tracks_first_hundred_frames(redkitchen, tracked):
    _, _, _, stamps, poses = redkitchen
    system, results = tracked
    ok = [r for r in results if r.state == 'ok']
    assert len(ok) >= 0.95 * len(results)
    metrics = ate(results, stamps, poses)
    assert metrics.ate_rmse < 0.03
    assert metrics.rpe_rot_rmse_deg < 0.5
    assert results[0].keyframe and np.allclose(results[0].T_wc, np.eye(4))
    assert all(r.n_keypoints > 900 and r.n_tracked >= 30 for r in ok)
    assert 2 <= len(system.map.keyframes) <= 30


def test_map_is_consistent(tracked):
    system, _ = tracked
    slam_map = system.map
    pts = slam_map.points
    for kf in slam_map.keyframes.values():
        for i in np.flatnonzero(kf.point_ids >= 0):
            pid = kf.point_ids[i]
            assert not pts.bad[pid] and pts.observations[pid][kf.id] == i
    for pid, obs in enumerate(pts.observations):
        assert bool(obs) == (not pts.bad[pid]), 'culled points, and only they, have no observations'
        assert pts.n_obs[pid] == len(obs)
        for kf_id, i in obs.items():
            assert slam_map.keyframes[kf_id].point_ids[i] == pid
    for a, edges in slam_map.covisibility.items():
        for b, weight in edges.items():
            assert slam_map.covisibility[b][a] == weight
    good = ~pts.bad
    assert np.allclose(np.linalg.norm(pts.normals[good], axis=1), 1.0)
    assert np.all(pts.min_dist[good] < pts.max_dist[good])
    assert sorted(system.keyframe_db.recognizer.ids) == sorted(slam_map.keyframes), \
        'the place recognizer indexes the keyframes of the map, culled ones removed'
    assert all(kf.frame.image is None for kf in slam_map.keyframes.values()), 'images are not kept in the map'


def test_lost_on_black_frames_then_relocalized(redkitchen):
    """Black frames lose track (no pose); the next real frame is relocalized against the map and tracking goes on.
    A frame without any valid depth is tracked from its 2D keypoints against the map's 3D points."""
    frames, camera, depth_info, stamps, poses = redkitchen
    system = System(camera, depth_info=depth_info)
    results = []
    for frame in frames[:60]:
        if frame.index in (30, 31):
            frame = type(frame)(frame.index, frame.stamp_ns, np.zeros_like(frame.color), frame.depth)
        if frame.index == 45:
            frame = type(frame)(frame.index, frame.stamp_ns, frame.color, np.zeros_like(frame.depth))
        results.append(system.process(frame))
    states = [r.state for r in results]
    assert states[30:32] == ['lost', 'lost'] and results[30].T_wc is None and results[30].n_keypoints == 0
    assert states[32] == 'relocalized' and results[32].n_tracked >= 50
    assert states[:30] == ['ok'] * 30 and states[33:] == ['ok'] * 27
    assert not results[45].keyframe
    T_w0 = invert(poses[0])
    for i in (32, 45, 59):
        error = invert(T_w0 @ poses[i]) @ results[i].T_wc
        assert np.linalg.norm(error[:3, 3]) < 0.04 and np.degrees(rotation_angle(error[:3, :3])) < 1.5


def test_waits_for_depth_to_initialise(redkitchen):
    frames, camera, _, _, _ = redkitchen
    system = System(camera)
    first = frames[0]
    no_depth = type(first)(0, first.stamp_ns, first.color, np.zeros_like(first.depth))
    black = type(first)(1, frames[1].stamp_ns, np.zeros_like(first.color), first.depth)
    results = run(system, [no_depth, black, frames[2], frames[3]])
    assert [r.state for r in results] == ['lost', 'lost', 'ok', 'ok']
    assert results[2].keyframe and np.allclose(results[2].T_wc, np.eye(4))


def test_swappable_relocalization_candidates(redkitchen):
    frames, camera, depth_info, _, _ = redkitchen
    system = System(camera, SlamConfig(place_recognition='test_never_recognizes'), depth_info=depth_info)
    black = type(frames[0])(2, frames[2].stamp_ns, np.zeros_like(frames[2].color), frames[2].depth)
    results = run(system, [frames[0], frames[1], black, frames[3], frames[4]])
    assert [r.state for r in results] == ['ok', 'ok', 'lost', 'lost', 'lost']
    assert system.keyframe_db.recognizer.asked == 2, 'asked for the lost frames 3 and 4, which have keypoints'
    assert system.keyframe_db.recognizer.ids == [0]


def test_config_from_dict_and_yaml(tmp_path):
    config = SlamConfig.from_dict({'features': {'name': 'orb', 'conf': {'max_keypoints': 500}},
                                   'tracking': {'motion_radius': 10}, 'local_mapping': {'ba_window': 0}})
    assert config.feature_conf == {'max_keypoints': 500} and config.tracking.motion_radius == 10.0
    assert isinstance(config.tracking.motion_radius, float) and config.local_mapping.ba_window == 0
    path = tmp_path / 'slam.yaml'
    path.write_text('tracking:\n  local_min_inliers: 40\n')
    assert SlamConfig.load(path).tracking.local_min_inliers == 40
    with pytest.raises(ConfigError, match=r'unknown key\(s\) radius in .*\[tracking\]'):
        SlamConfig.from_dict({'tracking': {'radius': 3}})
    with pytest.raises(ConfigError, match=r'unknown key\(s\) mapping'):
        SlamConfig.from_dict({'mapping': {}})
    with pytest.raises(ConfigError, match='invalid value'):
        SlamConfig.from_dict({'tracking': {'motion_radius': 'wide'}})
    path.write_text('- a list\n')
    with pytest.raises(ConfigError, match='must hold a mapping'):
        SlamConfig.load(path)
    with pytest.raises(ConfigError, match='unknown feature extractor'):
        System(CameraInfo(640, 480, np.eye(3)), SlamConfig(features='nope'))


def test_descriptor_thresholds_are_per_metric(tmp_path):
    default = SlamConfig().tracking
    assert (default.threshold('strict_distance', 'hamming'), default.threshold('max_distance', 'hamming')) == (50, 100)
    assert (default.threshold('strict_distance', 'l2'), default.threshold('max_distance', 'l2')) == (0.55, 1.13)
    path = tmp_path / 'slam.yaml'
    path.write_text('place_recognition: {name: bow, conf: {n_words: 256}}\ntracking: {strict_distance: {l2: 0.5}}\n')
    config = SlamConfig.load(path)
    assert config.tracking.strict_distance == {'hamming': 50.0, 'l2': 0.5}, 'only the metric named is replaced'
    assert config.place_recognition == 'bow' and config.place_recognition_conf == {'n_words': 256}
    assert SlamConfig.from_dict(config.as_dict()) == config
    with pytest.raises(ConfigError, match=r'strict_distance is given per descriptor metric, e.g. \{hamming: 50, '):
        SlamConfig.from_dict({'tracking': {'strict_distance': 40}})
    with pytest.raises(ConfigError, match=r"unknown key\(s\) cosine in .*\[tracking\] max_distance; valid keys: "
                                          r"hamming, l2"):
        SlamConfig.from_dict({'tracking': {'max_distance': {'cosine': 0.3}}})
    with pytest.raises(ConfigError, match=r'\[place_recognition\] must be a mapping'):
        SlamConfig.from_dict({'place_recognition': 'bow'})
