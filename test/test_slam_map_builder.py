"""Maps from known poses (rapnet_loc.slam.map_builder) and bag-of-words candidates (rapnet_loc.vpr.bow through
rapnet_loc.slam.keyframe_database), on a synthetic sequence with exact ground truth and depth."""
import argparse

import numpy as np
import pytest

from rapnet_loc.cli import build_map, localize
from rapnet_loc.geometry import pose_matrix, rotation_angle, yaw_quat
from rapnet_loc.io.openloris import OpenLORISBag
from rapnet_loc.io.trajectory import read_tum
from rapnet_loc.slam import System
from rapnet_loc.slam.keyframe_database import KeyFrameDatabase
from rapnet_loc.slam.map_builder import KeyframePolicy, MapBuilder
from rapnet_loc.synth import Challenges, generate
from rapnet_loc.vpr.bow import BagOfWords, Vocabulary

FRAMES = 60


@pytest.fixture(scope='module')
def synthetic(tmp_path_factory):
    out = tmp_path_factory.mktemp('synth')
    return generate(out, scene='office', sequences=1, frames=FRAMES, width=320, height=240, seed=2,
                    challenges=Challenges.none(), compression='none', progress=False)


@pytest.fixture(scope='module')
def sequence(synthetic):
    """Camera info, RGB-D frames and their exact colour-camera poses (N, 4, 4) of a synthetic sequence."""
    with OpenLORISBag(synthetic.bags[0]) as bag:
        return bag.camera_info(), list(bag.rgbd_frames()), synthetic.sequences[0].T_world_cam


@pytest.fixture(scope='module')
def built(sequence):
    camera, frames, poses = sequence
    builder = MapBuilder(camera)
    policy, last = KeyframePolicy(), None
    for since, (frame, T_wc) in enumerate(zip(frames, poses), 1):
        if policy.due(last, T_wc, since):
            builder.add(frame, T_wc)
            last = T_wc
    return builder, builder.finish()


def test_keyframe_policy():
    policy = KeyframePolicy(every=5, translation=0.1, rotation_deg=10.0)
    a = np.eye(4)
    assert policy.due(None, a, 0)
    assert not policy.due(a, pose_matrix([0.05, 0.0, 0.0], yaw_quat(0.1)), 4)
    assert policy.due(a, pose_matrix([0.05, 0.0, 0.0], yaw_quat(0.1)), 5)
    assert policy.due(a, pose_matrix([0.0, 0.1, 0.0], yaw_quat(0.0)), 1)
    assert policy.due(a, pose_matrix([0.0, 0.0, 0.0], yaw_quat(np.radians(10.5))), 1)
    assert not KeyframePolicy().due(a, a, 1000)


def test_map_from_known_poses_merges_and_fits_them(sequence, built):
    camera, frames, poses = sequence
    builder, slam_map = built
    assert 4 <= len(slam_map.keyframes) <= FRAMES // 3
    for kf in slam_map.keyframes.values():
        assert np.allclose(kf.T_wc, poses[kf.frame.id])
    pts = slam_map.points
    assert not pts.bad.any() and (pts.n_obs >= 2).mean() > 0.3, 'points seen again are merged, not duplicated'
    pid, kf_ids, kp = slam_map.observation_arrays(np.arange(len(pts)))
    assert np.array_equal(np.bincount(pid, minlength=len(pts)), pts.n_obs)
    errors = []
    for p, k, i in zip(pid.tolist(), kf_ids.tolist(), kp.tolist()):
        kf = slam_map.keyframes[k]
        assert kf.point_ids[i] == p
        uv = builder.camera.project((kf.T_cw[:3, :3] @ pts.positions[p] + kf.T_cw[:3, 3])[None])[0]
        errors.append(np.linalg.norm(uv - kf.frame.keypoints_un[i]) / kf.frame.features.level_scales[i])
    assert np.median(errors) < 1.0 and np.percentile(errors, 90) < 3.0
    assert all(slam_map.covisibility[k] for k in slam_map.keyframes), 'consecutive keyframes share points'


def test_frames_localize_on_the_built_map(sequence, built):
    camera, frames, poses = sequence
    _, slam_map = built
    system = System(camera, slam_map=slam_map)
    n_points = len(slam_map.points)
    t_err, r_err = [], []
    for i in range(3, FRAMES, 7):
        result = system.localize(frames[i])
        assert result.state == 'relocalized' and not result.keyframe
        t_err.append(np.linalg.norm(result.T_wc[:3, 3] - poses[i][:3, 3]))
        r_err.append(np.degrees(rotation_angle(poses[i][:3, :3].T @ result.T_wc[:3, :3])))
    assert np.median(t_err) < 0.02 and np.median(r_err) < 0.5
    assert len(slam_map.points) == n_points


def test_bag_of_words_candidates(built):
    builder, slam_map = built
    assert sorted(builder.recognizer.ids) == sorted(slam_map.keyframes), 'the builder indexes its keyframes'
    database = KeyFrameDatabase(BagOfWords({'n_words': 128}), slam_map)
    database.sync()
    database.recognizer.fit()
    vocabulary = database.recognizer.vocabulary
    assert vocabulary.words.shape == (128, 32)
    assert np.array_equal(vocabulary.assign(vocabulary.words), np.arange(128))
    for kf in slam_map.keyframes.values():
        candidates = database(slam_map, kf.frame, 3)
        assert len(candidates) == 3
        assert kf in candidates or set(c.id for c in candidates) & set(slam_map.covisible(kf.id))


def test_vocabulary_of_float_descriptors():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(4, 8)).astype(np.float32) * 10
    descriptors = (centres[rng.integers(4, size=400)] + rng.normal(size=(400, 8))).astype(np.float32)
    vocabulary = Vocabulary(descriptors, 'l2', n_words=4)
    assert np.abs(np.sort(vocabulary.words[:, 0]) - np.sort(centres[:, 0])).max() < 1.0


def cli_args(module, name, *argv):
    parser = argparse.ArgumentParser()
    module.add_parser(parser.add_subparsers())
    return parser.parse_args([name, *map(str, argv)])


def test_cli_on_a_bag_with_ground_truth_topic(synthetic, tmp_path, capsys):
    """``build-map --poses gt`` takes a bag's /gt moved to the camera by /tf_static; ``--frames`` are seconds."""
    map_path, traj_path = tmp_path / 'office.map', tmp_path / 'loc.tum'
    assert build_map.run(cli_args(build_map, 'build-map', synthetic.bags[0], '--poses', 'gt', '--frames', '0:1',
                                  '--out', map_path)) == 0
    assert 'from 31 frames (0 without a pose)' in capsys.readouterr().out
    assert localize.run(cli_args(localize, 'localize', map_path, synthetic.bags[0], '--frames', '0.5:1.5',
                                 '--out', traj_path)) == 0
    traj = read_tum(traj_path)
    assert f'localized {len(traj)}/31 frames' in capsys.readouterr().out and len(traj) >= 28
    seq = synthetic.sequences[0]
    gt = dict(zip(seq.stamps_ns.tolist(), seq.T_world_cam))
    errors = [np.linalg.norm(T[:3, 3] - gt[s][:3, 3]) for s, T in zip(traj.stamps_ns.tolist(), traj.matrices)]
    assert np.median(errors) < 0.02
