"""``rapnet-loc replay`` (rapnet_loc.cli.replay) on a 7-Scenes subset and on a ROS 1 bag made from 7-Scenes frames."""
import argparse
import csv
import json

import numpy as np
import pytest
from bagfactory import TS, T, header, image_msg, transform_stamped
from rosbags.rosbag1 import Writer

from rapnet_loc.cli import replay
from rapnet_loc.errors import BagError, ConfigError, TopicError
from rapnet_loc.geometry import find_chain, invert, pose_matrix, yaw_quat
from rapnet_loc.io.openloris import OpenLORISTopics
from rapnet_loc.io.sevenscenes import SevenScenesFolder
from rapnet_loc.io.source import parse_frame_range
from rapnet_loc.io.trajectory import (OpenLORISResult, Trajectory, interpolate_poses, read_openloris, read_tum,
                                      write_openloris)
from rapnet_loc.slam.run import STATUS_COLUMNS

T0 = 1_560_000_000 * 10**9
BAG_FRAMES = 20
# base_link -> d400_link -> d400_color, as a robot's camera mount (the optical frame looks along base x)
BASE_LINK = pose_matrix([0.2, -0.05, 0.9], [0.0, 0.0, 0.0, 1.0])
LINK_COLOR = pose_matrix([0.0, 0.015, 0.0], [-0.5, 0.5, -0.5, 0.5])


@pytest.fixture(scope='module')
def redkitchen(shared_data):
    return shared_data / '7scenes-redkitchen-seq01-dev'


def replay_args(*argv):
    parser = argparse.ArgumentParser()
    replay.add_parser(parser.add_subparsers())
    return parser.parse_args(['replay', *map(str, argv)])


def read_status(path):
    with open(path, newline='') as fh:
        return list(csv.DictReader(fh))


def camera_info_msg(stamp, K):
    return T['sensor_msgs/msg/CameraInfo'](
        header=header(stamp, 'd400_color'), height=480, width=640, distortion_model='plumb_bob', D=np.zeros(5),
        K=K.reshape(-1), R=np.eye(3).reshape(-1), P=np.zeros(12), binning_x=0, binning_y=0,
        roi=T['sensor_msgs/msg/RegionOfInterest'](x_offset=0, y_offset=0, height=0, width=0, do_rectify=False))


@pytest.fixture(scope='module')
def bag(redkitchen, tmp_path_factory):
    """An OpenLORIS-layout ROS 1 bag of 7-Scenes frames 0..19 with /tf_static and /gt (base_link poses), and the
    camera-to-world ground truth (stamps, poses) of its colour camera."""
    folder = SevenScenesFolder(redkitchen, 0, BAG_FRAMES - 1)
    stamps, poses = folder.poses()
    stamps = stamps + T0
    base_color = BASE_LINK @ LINK_COLOR
    topics = OpenLORISTopics()
    path = tmp_path_factory.mktemp('bag') / 'home1-1.bag'
    with Writer(path) as writer:
        conn = {name: writer.add_connection(topic, msgtype, typestore=TS) for name, topic, msgtype in [
            ('info', topics.camera_info, 'sensor_msgs/msg/CameraInfo'),
            ('static', topics.tf_static, 'tf2_msgs/msg/TFMessage'),
            ('color', topics.color, 'sensor_msgs/msg/Image'), ('depth', topics.depth, 'sensor_msgs/msg/Image'),
            ('gt', topics.ground_truth, 'tf2_msgs/msg/TFMessage')]}

        def write(name, stamp, msg):
            writer.write(conn[name], stamp, TS.serialize_ros1(msg, conn[name].msgtype))

        write('info', stamps[0], camera_info_msg(stamps[0], folder.K))
        write('static', stamps[0], T['tf2_msgs/msg/TFMessage']([
            transform_stamped(stamps[0], 'base_link', 'd400_link', BASE_LINK),
            transform_stamped(stamps[0], 'd400_link', 'd400_color', LINK_COLOR)]))
        for frame, stamp, pose in zip(folder, stamps, poses):
            write('color', stamp, image_msg(stamp, 'd400_color', frame.color, 'rgb8'))
            depth_mm = np.round(frame.depth * 1000).astype(np.uint16)
            write('depth', stamp + 1000, image_msg(stamp, 'd400_color', depth_mm, '16UC1'))
            gt = T['tf2_msgs/msg/TFMessage']([transform_stamped(stamp, 'gt_map', 'base_link',
                                                                pose @ invert(base_color))])
            write('gt', stamp + 2000, gt)
    return path, stamps, poses


def test_replay_sevenscenes_subset(redkitchen, tmp_path):
    out = tmp_path / 'out'
    assert replay.run(replay_args(redkitchen, '--out', out, '--frames', '0:29')) == 0
    rows = read_status(out / 'status.csv')
    assert list(rows[0]) == list(STATUS_COLUMNS) and len(rows) == 30
    assert {r['state'] for r in rows} <= {'ok', 'lost', 'relocalized'}
    assert sum(r['state'] == 'ok' for r in rows) >= 29
    assert all(int(r['keypoints']) > 900 and float(r['ms']) > 0 for r in rows)
    traj = read_tum(out / 'trajectory.tum')
    assert len(traj) == sum(r['state'] != 'lost' for r in rows)
    assert [f'{s / 1e9:.9f}' for s in traj.stamps_ns[:2]] == [rows[0]['stamp'], rows[1]['stamp']]
    report = json.loads((out / 'report.json').read_text())
    assert report['frames'] == 30 and report['tracked'] == len(traj) and report['ate']['ate_rmse'] < 0.03
    assert all((out / name).is_file() for name in ('replay_trajectory.png', 'replay_errors.png'))
    assert not (out / 'trajectory_openloris.txt').exists()


def test_replay_bag_with_ground_truth_topic(bag, tmp_path):
    path, stamps, poses = bag
    out = tmp_path / 'out'
    assert replay.run(replay_args(path, '--out', out)) == 0
    rows = read_status(out / 'status.csv')
    assert len(rows) == BAG_FRAMES and sum(r['state'] == 'ok' for r in rows) >= BAG_FRAMES - 1
    result = read_openloris(out / 'trajectory_openloris.txt')
    assert result.scene == 'home' and result.frame == 'd400_color' and list(result.sequences) == [1]
    tum = read_tum(out / 'trajectory.tum')
    assert np.array_equal(result.sequences[1].stamps_ns, tum.stamps_ns)
    assert set(tum.stamps_ns) <= set(stamps)
    report = json.loads((out / 'report.json').read_text())
    assert report['ate']['matches'] == len(tum) and report['ate']['ate_rmse'] < 0.02


def test_replay_bag_frame_range_and_gt_file(bag, tmp_path):
    # for bags, --frames is in seconds from the bag start: 0.15..0.48 s are frames 5..14 at 30 Hz
    path, stamps, poses = bag
    gt_file = tmp_path / 'gt_home_1.txt'
    base = poses @ invert(BASE_LINK @ LINK_COLOR)
    write_openloris(gt_file, OpenLORISResult(info={'scene': 'home', 'frame': 'base_link'},
                                             sequences={1: Trajectory.from_matrices(stamps, base)}))
    out = tmp_path / 'out'
    assert replay.run(replay_args(path, '--out', out, '--frames', '0.15:0.48', '--gt', gt_file)) == 0
    rows = read_status(out / 'status.csv')
    assert len(rows) == 10 and rows[0]['stamp'] == f'{stamps[5] // 10**9}.{stamps[5] % 10**9:09d}'
    report = json.loads((out / 'report.json').read_text())
    assert report['frames'] == 10 and report['ate']['ate_rmse'] < 0.02


def test_replay_several_bags_is_one_lifelong_run(bag, tmp_path):
    """Two sequences of one scene (the same frames again as sequence 2): one result file with a ``seq:`` block per
    bag holding the tracked frames of its status, and sequence 2 relocalizes on its first frame."""
    path, stamps, poses = bag
    second = tmp_path / 'home1-2.bag'
    second.symlink_to(path)
    out = tmp_path / 'out'
    assert replay.run(replay_args(path, second, '--out', out)) == 0
    result = read_openloris(out / 'trajectory_openloris.txt')
    assert result.scene == 'home' and sorted(result.sequences) == [1, 2]
    for seq, name in ((1, 'home1-1'), (2, 'home1-2')):
        rows = read_status(out / name / 'status.csv')
        tracked = [r['stamp'] for r in rows if r['state'] != 'lost']
        assert [f'{s // 10**9}.{s % 10**9:09d}' for s in result.sequences[seq].stamps_ns] == tracked
        assert read_openloris(out / name / 'trajectory_openloris.txt').sequences[seq].stamps_ns.tolist() == \
            result.sequences[seq].stamps_ns.tolist()
    rows = read_status(out / 'home1-2' / 'status.csv')
    assert rows[0]['state'] == 'relocalized' and all(r['state'] == 'ok' for r in rows[1:])
    report = json.loads((out / 'report.json').read_text())
    assert [r['source'] for r in report['sequences']] == [str(path), str(second)]
    assert report['sequences'][1]['ate']['ate_rmse'] < 0.02 and report['keyframes'] >= 1


def test_replay_several_bags_refuses_what_cannot_be_one_scene(bag, tmp_path):
    path = bag[0]
    for name in ('office1-2.bag', 'home2-1.bag'):
        (tmp_path / name).symlink_to(path)
    (tmp_path / 'copy').mkdir()
    (tmp_path / 'copy' / 'home1-1.bag').symlink_to(path)
    for other, message in (('office1-2.bag', 'several scenes'), ('home2-1.bag', 'same sequence number'),
                           ('copy/home1-1.bag', 'same name')):
        with pytest.raises(ConfigError, match=message):
            replay.run(replay_args(path, tmp_path / other, '--out', tmp_path / 'out'))


def test_replay_errors(redkitchen, tmp_path):
    with pytest.raises(ConfigError, match='FIRST:LAST'):
        replay.run(replay_args(redkitchen, '--frames', 'a:b', '--out', tmp_path))
    with pytest.raises(ConfigError, match='ends before it starts'):
        replay.run(replay_args(redkitchen, '--frames', '9:3', '--out', tmp_path))
    with pytest.raises(ConfigError, match='unknown feature extractor'):
        replay.run(replay_args(redkitchen, '--features', 'nope', '--frames', '0:1', '--out', tmp_path))
    with pytest.raises(BagError):
        replay.run(replay_args(tmp_path / 'missing.bag', '--out', tmp_path))


def test_parse_frame_range():
    assert parse_frame_range(None) == (None, None)
    assert parse_frame_range('3:') == (3, None) and parse_frame_range(':7') == (None, 7)
    assert parse_frame_range(' 2 : 5 ') == (2, 5)


def test_find_chain_composes_and_inverts():
    a_b = pose_matrix([1.0, 0.0, 0.0], yaw_quat(0.3))
    c_b = pose_matrix([0.0, 2.0, 0.0], yaw_quat(-0.2))
    chain = find_chain({('a', 'b'): a_b, ('c', 'b'): c_b}, 'a', 'c')
    assert np.allclose(chain, a_b @ invert(c_b))
    assert np.allclose(find_chain({('a', 'b'): a_b}, 'a', 'a'), np.eye(4))
    with pytest.raises(TopicError, match="from 'a' to 'z'"):
        find_chain({('a', 'b'): a_b}, 'a', 'z')


def test_interpolate_poses():
    stamps = np.array([0, 100_000_000, 200_000_000, 900_000_000], np.int64)
    poses = np.stack([pose_matrix([k, 0.0, 0.0], yaw_quat(0.1 * k)) for k in range(4)])
    traj = interpolate_poses(stamps, poses, [-1, 0, 50_000_000, 150_000_000, 500_000_000, 900_000_000])
    assert traj.stamps_ns.tolist() == [0, 50_000_000, 150_000_000]
    assert np.allclose(traj.positions[:, 0], [0.0, 0.5, 1.5])
    assert np.allclose(traj.matrices[1], pose_matrix([0.5, 0.0, 0.0], yaw_quat(0.05)))


def test_replay_with_config_that_never_initialises(redkitchen, tmp_path):
    config = tmp_path / 'slam.yaml'
    config.write_text('tracking:\n  init_min_points: 100000\nfeatures:\n  name: orb\n  conf: {max_keypoints: 300}\n')
    out = tmp_path / 'out'
    assert replay.run(replay_args(redkitchen, '--config', config, '--frames', '0:2', '--out', out)) == 0
    rows = read_status(out / 'status.csv')
    assert [r['state'] for r in rows] == ['lost'] * 3 and all(0 < int(r['keypoints']) <= 300 for r in rows)
    assert len(read_tum(out / 'trajectory.tum')) == 0
    report = json.loads((out / 'report.json').read_text())
    assert report['tracked'] == 0 and report['ate'] is None
