"""OpenLORIS-layout bag access (rapnet_loc.io.openloris) on small bz2 ROS 1 bags built in tmp."""
import logging

import numpy as np
import pytest
from bagfactory import HEIGHT, K, RECEIVE_LAG_NS, WIDTH, color_value, depth_mm, write_openloris_bag

from rapnet_loc.errors import ConfigError, ImageFormatError, TopicError
from rapnet_loc.geometry import pose_matrix, yaw_quat
from rapnet_loc.io.openloris import OpenLORISBag, OpenLORISTopics, PairingReport, pair_nearest, seconds_window

T0 = 1_560_000_000 * 10**9
MS = 1_000_000
FRAME = 33 * MS
# Colour 0..4 every 33 ms. Depth 0 pairs colour 0 (+1 ms), depth 1 is 25 ms off colour 1 (unpaired: both),
# depth 2 pairs colour 2 exactly, depth 3 sits between colours 3 and 4 (15 ms from 3, 18 ms from 4: it goes to 3),
# so colour 4 is left unpaired.
COLOR_NS = [T0 + i * FRAME for i in range(5)]
DEPTH_NS = [T0 + 1 * MS, T0 + FRAME + 25 * MS, T0 + 2 * FRAME, T0 + 3 * FRAME + 15 * MS]


def poses(n, dx):
    return [pose_matrix([dx * k, 0.5 * k, 0.0], yaw_quat(0.1 * k)) for k in range(n)]


@pytest.fixture(scope='module')
def bag_path(tmp_path_factory):
    path = tmp_path_factory.mktemp('openloris') / 'office1-1.bag'
    gt = [(T0 + k * 100 * MS, p) for k, p in enumerate(poses(3, 1.0))]
    odom = [(T0 + k * 50 * MS, p) for k, p in enumerate(poses(4, 0.2))]
    static = {('base_link', 'd400_color'): poses(2, 0.3)[1], ('base_link', 't265_fisheye1'): poses(3, 0.1)[2]}
    return write_openloris_bag(path, COLOR_NS, DEPTH_NS, gt=gt, odom=odom, static=static)


def test_pairing_with_unpaired_frames(bag_path, caplog):
    with OpenLORISBag(bag_path) as bag, caplog.at_level(logging.INFO):
        frames = list(bag.rgbd_frames())
        assert bag.pairing == PairingReport(paired=3, unpaired_color=2, unpaired_depth=1)
    assert [f.index for f in frames] == [0, 1, 2]
    assert [f.stamp_ns for f in frames] == [COLOR_NS[0], COLOR_NS[2], COLOR_NS[3]]
    for frame, (i, j) in zip(frames, [(0, 0), (2, 2), (3, 3)]):
        assert frame.color.shape == (HEIGHT, WIDTH, 3) and frame.color.dtype == np.uint8
        assert frame.depth.shape == (HEIGHT, WIDTH) and frame.depth.dtype == np.float32
        assert np.all(frame.color == color_value(i))
        np.testing.assert_allclose(frame.depth, depth_mm(j) / 1000.0, rtol=1e-6)
        assert frame.frame_id == 'd400_color'
    assert '3 colour/depth pairs, 2 unpaired colour and 1 unpaired depth' in caplog.text


def test_wider_tolerance_pairs_more(bag_path):
    with OpenLORISBag(bag_path, max_pair_dt_s=0.03) as bag:
        assert len(list(bag.rgbd_frames())) == 4
        assert bag.pairing == PairingReport(paired=4, unpaired_color=1, unpaired_depth=0)


def test_frame_window_in_seconds(bag_path):
    with OpenLORISBag(bag_path) as bag:
        assert bag.start_ns == T0 + RECEIVE_LAG_NS
        frames = list(bag.frames_in_range(0.05, 0.11))
        # depth 3 is received after the window but still pairs colour 3; depth 1 is in it and unpaired
        assert bag.pairing == PairingReport(paired=2, unpaired_color=0, unpaired_depth=1)
    assert [f.stamp_ns for f in frames] == [COLOR_NS[2], COLOR_NS[3]]
    assert [f.index for f in frames] == [0, 1]
    with OpenLORISBag(bag_path) as bag:
        assert [f.stamp_ns for f in bag.rgbd_frames(*seconds_window(bag.start_ns, 0.09))] == [COLOR_NS[3]]
    assert seconds_window(100, None, 2.5) == (None, 100 + 2_500_000_000)
    with pytest.raises(ConfigError, match='ends before it starts'):
        seconds_window(0, 2.0, 1.0)
    with pytest.raises(ConfigError, match='max_pair_dt_s must be positive, got 0'):
        OpenLORISBag(bag_path, max_pair_dt_s=0)


def test_camera_info_transforms_gt_odom(bag_path):
    with OpenLORISBag(bag_path) as bag:
        info = bag.camera_info()
        static = bag.static_transforms()
        gt_stamps, gt_poses = bag.ground_truth()
        odom_stamps, odom_poses = bag.odometry()
    assert (info.width, info.height) == (WIDTH, HEIGHT)
    assert (info.frame_id, info.distortion_model) == ('d400_color', 'plumb_bob')
    np.testing.assert_allclose(info.K, K)
    assert info.D.shape == (5,)
    assert set(static) == {('base_link', 'd400_color'), ('base_link', 't265_fisheye1')}
    np.testing.assert_allclose(static[('base_link', 'd400_color')], poses(2, 0.3)[1], atol=1e-12)
    assert gt_stamps.dtype == np.int64 and gt_poses.shape == (3, 4, 4)
    np.testing.assert_array_equal(gt_stamps, [T0, T0 + 100 * MS, T0 + 200 * MS])
    np.testing.assert_allclose(gt_poses, poses(3, 1.0), atol=1e-12)
    assert odom_poses.shape == (4, 4, 4)
    np.testing.assert_array_equal(odom_stamps, [T0 + k * 50 * MS for k in range(4)])
    np.testing.assert_allclose(odom_poses, poses(4, 0.2), atol=1e-12)


def test_missing_color_topic(tmp_path):
    path = write_openloris_bag(tmp_path / 'nocolor.bag', COLOR_NS, DEPTH_NS, omit={'/d400/color/image_raw'})
    with OpenLORISBag(path) as bag:
        with pytest.raises(TopicError, match=r"topic '/d400/color/image_raw' not in bag .*nocolor.bag; it has: "
                                             r".*/d400/aligned_depth_to_color/image_raw"):
            bag.rgbd_frames()
        with pytest.raises(TopicError, match="topic '/gt' not in bag"):
            bag.ground_truth()


def test_wrong_encodings(tmp_path):
    path = write_openloris_bag(tmp_path / 'enc.bag', COLOR_NS, DEPTH_NS, depth_encoding='rgb8')
    with OpenLORISBag(path) as bag, pytest.raises(
            ImageFormatError, match=r"'rgb8' on topic '/d400/aligned_depth_to_color/image_raw' is not a depth"):
        next(bag.rgbd_frames())
    path = write_openloris_bag(tmp_path / 'enc2.bag', COLOR_NS, DEPTH_NS, color_encoding='mono16')
    with OpenLORISBag(path) as bag, pytest.raises(
            ImageFormatError, match=r"'mono16' on topic '/d400/color/image_raw' is not a colour"):
        next(bag.rgbd_frames())


def test_topic_of_wrong_type(bag_path):
    topics = OpenLORISTopics.from_dict({'ground_truth': '/odom', 'color': '/gt'})
    with OpenLORISBag(bag_path, topics=topics) as bag:
        assert len(bag.ground_truth()[0]) == 4  # Odometry works as a pose topic too
        with pytest.raises(TopicError, match=r"topic '/gt' in bag .* holds tf2_msgs/msg/TFMessage, expected "
                                             r"sensor_msgs/msg/Image"):
            bag.rgbd_frames()
    with pytest.raises(ConfigError, match='unknown topic key.*colour.*valid keys'):
        OpenLORISTopics.from_dict({'colour': '/x'})


def run_pairing(events, max_dt=10, max_lag=300):
    """Pairs, each with the largest number of events that arrived after one of its items and before it was yielded.

    Items must be unique (e.g. ``('c', k)`` / ``('d', k)``).
    """
    position = {item: n for n, (_, _, item) in enumerate(events, 1)}
    arrived = 0

    def counted():
        nonlocal arrived
        for event in events:
            arrived += 1
            yield event

    out = []
    for pair in pair_nearest(counted(), max_dt, max_lag):
        out.append((pair, arrived - min(position[item] for item in pair if item is not None)))
    return out


def test_pair_nearest_streams_with_small_memory():
    events = []
    for k in range(1000):  # colour and depth interleaved, depth 2 ms late, every 10th depth missing
        events.append((True, k * 100, ('c', k)))
        if k % 10:
            events.append((False, k * 100 + 2, ('d', k)))
    out = run_pairing(events)
    pairs = [pair for pair, _ in out]
    assert sum(c is not None and d is not None for c, d in pairs) == 900
    assert all(c[1] == d[1] for c, d in pairs if c and d)
    assert [c[1] for c, d in pairs if d is None] == list(range(0, 1000, 10))
    assert all(c is not None for c, d in pairs)
    assert max(delay for _, delay in out) <= 4  # a colour waits for the next depth, two frames on at a gap


def test_pair_nearest_when_one_stream_stops():
    # depth stops after 10 frames, then colour stops and depth resumes: nothing waits for the end of the stream
    events = [e for k in range(10) for e in ((True, k * 100, ('c', k)), (False, k * 100 + 1, ('d', k)))]
    events += [(True, k * 100, ('c', k)) for k in range(10, 30)]
    events += [(False, k * 100 + 1, ('d', k)) for k in range(40, 80)]
    out = run_pairing(events)
    assert [pair for pair, _ in out] == ([(('c', k), ('d', k)) for k in range(10)]
                                         + [(('c', k), None) for k in range(10, 30)]
                                         + [(None, ('d', k)) for k in range(40, 80)])
    # released once the streams have moved on by max_lag + max_dt (about 3 frames), except at the very end
    assert max(delay for _, delay in out[:-4]) <= 5
