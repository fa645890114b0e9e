"""Acceptance of the synthetic bags: they round-trip through rosbags and our OpenLORIS reader, and their depth,
poses and calibration are geometrically consistent (also when rebuilt from the messages in the bag)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from rosbags.highlevel import AnyReader

from rapnet_loc.geometry import invert, pose_matrix
from rapnet_loc.io.bag import stamp_ns
from rapnet_loc.io.images import decode_image
from rapnet_loc.io.openloris import OpenLORISBag
from rapnet_loc.synth import DYNAMIC, Challenges, generate

WIDTH, HEIGHT, FRAMES = 320, 240, 24
COLOR, DEPTH, LABELS = '/d400/color/image_raw', '/d400/aligned_depth_to_color/image_raw', '/synth/labels'
EXPECTED_TYPES = {
    COLOR: 'sensor_msgs/msg/Image', DEPTH: 'sensor_msgs/msg/Image', LABELS: 'sensor_msgs/msg/Image',
    '/synth/label_table': 'std_msgs/msg/String',
    '/d400/color/camera_info': 'sensor_msgs/msg/CameraInfo',
    '/d400/aligned_depth_to_color/camera_info': 'sensor_msgs/msg/CameraInfo',
    '/tf_static': 'tf2_msgs/msg/TFMessage', '/gt': 'tf2_msgs/msg/TFMessage', '/odom': 'nav_msgs/msg/Odometry',
}


@pytest.fixture(scope='module')
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp('synth_home')
    summary = generate(out, scene='home', sequences=2, frames=FRAMES, width=WIDTH, height=HEIGHT, seed=3,
                       challenges=Challenges(people=2), compression='none', progress=False)
    return summary


def read_bag(path: Path) -> dict:
    """Everything in a synthetic bag, decoded with rosbags' AnyReader (definitions taken from the bag)."""
    out: dict = {'msgs': {}, 'types': {}, 'counts': {}}
    with AnyReader([path]) as reader:
        for conn in reader.connections:
            out['types'][conn.topic] = conn.msgtype
            out['counts'][conn.topic] = conn.msgcount
        for conn, time_ns, raw in reader.messages():
            msg = reader.deserialize(raw, conn.msgtype)
            out['msgs'].setdefault(conn.topic, []).append((time_ns, msg))
    return out


def consistency(depth_i, depth_j, label_i, label_j, K, T_world_cam_i, T_world_cam_j, static_ids):
    """Reproject the static pixels of frame i into frame j and z-test them against frame j's depth.

    Returns (median relative depth error over co-visible pixels, fraction of tested pixels seen *behind* the
    reprojected point, number of co-visible pixels). Tested: pixels landing in view on a valid, static pixel of
    frame j. Occluded (frame j sees something 2 % nearer) and behind (2 % farther: impossible with exact poses,
    except at depth edges) pixels are not co-visible.
    """
    v, u = np.nonzero((depth_i > 0) & np.isin(label_i, static_ids))
    z = depth_i[v, u].astype(np.float64)
    pts = np.linalg.inv(K) @ np.stack([u, v, np.ones_like(u)]).astype(np.float64) * z
    T = invert(T_world_cam_j) @ T_world_cam_i
    pj = T[:3, :3] @ pts + T[:3, 3:4]
    pj = pj[:, pj[2] > 0.1]
    proj = K @ pj
    uj = np.round(proj[0] / proj[2]).astype(int)
    vj = np.round(proj[1] / proj[2]).astype(int)
    inside = (uj >= 0) & (uj < depth_j.shape[1]) & (vj >= 0) & (vj < depth_j.shape[0])
    uj, vj, zj = uj[inside], vj[inside], pj[2, inside]
    dj = depth_j[vj, uj].astype(np.float64)
    tested = (dj > 0) & np.isin(label_j[vj, uj], static_ids)
    dj, zj = dj[tested], zj[tested]
    behind = dj > 1.02 * zj
    covisible = (dj >= 0.98 * zj) & ~behind
    rel = np.abs(dj[covisible] - zj[covisible]) / zj[covisible]
    return float(np.median(rel)) if covisible.any() else 1.0, float(behind.mean()), int(covisible.sum())


def frame_pairs():
    """(seq_i, i, seq_j, j) pairs within each sequence; the pair across sequences is searched by the test."""
    return [(1, 0, 1, FRAMES // 2), (2, 3, 2, FRAMES - 1)]


def test_bag_round_trip_with_rosbags(dataset):
    for seq in dataset.sequences:
        bag = read_bag(seq.bag)
        assert bag['types'] == EXPECTED_TYPES
        for topic in ('/d400/color/camera_info', '/d400/aligned_depth_to_color/camera_info', '/tf_static',
                      '/synth/label_table'):
            assert bag['counts'][topic] == 1
            assert bag['msgs'][topic][0][0] == seq.stamps_ns[0]          # at bag start
        for topic in (COLOR, DEPTH, LABELS, '/gt'):
            assert bag['counts'][topic] == FRAMES
        # 20 Hz wheel odometry over the sequence
        assert bag['counts']['/odom'] == int((FRAMES - 1) / 30.0 * 20.0) + 1
        color = [m for _, m in bag['msgs'][COLOR]]
        depth = [m for _, m in bag['msgs'][DEPTH]]
        labels = [m for _, m in bag['msgs'][LABELS]]
        assert {m.encoding for m in color} == {'rgb8'}
        assert {m.encoding for m in depth} == {'16UC1'}
        assert {m.encoding for m in labels} == {'mono8'}
        for msgs in (color, depth, labels):
            assert {m.header.frame_id for m in msgs} == {'d400_color'}
            assert [stamp_ns(m.header.stamp) for m in msgs] == seq.stamps_ns.tolist()
            assert {(m.width, m.height) for m in msgs} == {(WIDTH, HEIGHT)}
        # bag receive time == header stamp, 30 Hz
        assert [t for t, _ in bag['msgs'][COLOR]] == seq.stamps_ns.tolist()
        assert np.allclose(np.diff(seq.stamps_ns), 1e9 / 30, atol=1)
        gt = [m.transforms[0] for _, m in bag['msgs']['/gt']]
        assert {(tf.header.frame_id, tf.child_frame_id) for tf in gt} == {('gt_map', 'base_link')}
        odom = [m for _, m in bag['msgs']['/odom']]
        assert {(m.header.frame_id, m.child_frame_id) for m in odom} == {('odom', 'base_link')}
        info = bag['msgs']['/d400/color/camera_info'][0][1]
        assert np.allclose(np.asarray(info.K).reshape(3, 3), dataset.camera.K)
        assert info.header.frame_id == 'd400_color'
        table = json.loads(bag['msgs']['/synth/label_table'][0][1].data)
        assert [(e['id'], e['name'], e['dynamic'], e['movable']) for e in table] == \
            [(x.id, x.name, x.dynamic, x.movable) for x in seq.labels]


def test_tf_static_is_the_published_calibration(dataset, repo_root):
    packaged = yaml.safe_load((repo_root / 'rapnet_loc' / 'io' / 'openloris_calibration.yaml').read_text())
    published = {(e['parent'], e['child']): (e['translation'], e['rotation_xyzw'])
                 for e in packaged['robots']['tsinghua']}
    bag = read_bag(dataset.bags[0])
    tfs = bag['msgs']['/tf_static'][0][1].transforms
    written = {(tf.header.frame_id, tf.child_frame_id):
               ([tf.transform.translation.x, tf.transform.translation.y, tf.transform.translation.z],
                [tf.transform.rotation.x, tf.transform.rotation.y, tf.transform.rotation.z, tf.transform.rotation.w])
               for tf in tfs}
    assert set(written) == {('base_link', 'd400_color'), ('base_link', 'd400_depth')}
    for key, value in written.items():
        assert value == (published[key][0], published[key][1])       # bit-exact


def test_round_trip_with_openloris_reader(dataset):
    for seq in dataset.sequences:
        with OpenLORISBag(seq.bag) as bag:
            info = bag.camera_info()
            assert (info.width, info.height, info.frame_id) == (WIDTH, HEIGHT, 'd400_color')
            assert np.allclose(info.K, dataset.camera.K)
            stamps, poses = bag.ground_truth()
            assert stamps.tolist() == seq.stamps_ns.tolist()
            assert np.allclose(poses, seq.T_world_base, atol=1e-9)
            frames = list(bag.rgbd_frames())
            assert bag.pairing.paired == FRAMES and bag.pairing.unpaired_color == 0
            assert [f.stamp_ns for f in frames] == seq.stamps_ns.tolist()
            assert frames[0].color.shape == (HEIGHT, WIDTH, 3) and frames[0].depth.dtype == np.float32
            odom_stamps, odom = bag.odometry()
            assert np.allclose(odom[0], np.eye(4))                        # odometry starts at the identity
            assert np.all(np.diff(odom_stamps) > 0)


def _bag_frames(path: Path):
    """Depth (m), labels and camera poses of every frame, built only from the bag's messages."""
    with OpenLORISBag(path) as bag:
        K = bag.camera_info().K
        T_base_cam = bag.static_transforms()[('base_link', 'd400_color')]
        stamps, T_world_base = bag.ground_truth()
        depth = {f.stamp_ns: f.depth for f in bag.rgbd_frames()}
        labels = {stamp_ns(m.header.stamp): decode_image(m.msg) for m in bag.bag.messages([LABELS])}
    poses = {int(s): T @ T_base_cam for s, T in zip(stamps, T_world_base)}
    return K, [(depth[s], labels[s], poses[s]) for s in sorted(depth)]


def test_geometric_consistency_from_bag_messages(dataset):
    """Depth of frame i, moved by the poses from /tf_static and /gt, matches the depth of frame j: within each
    sequence, and across the two sequences (one world frame) on objects that were not moved."""
    data = {seq.seq: _bag_frames(seq.bag) for seq in dataset.sequences}
    K = data[1][0]
    moved = set(dataset.sequences[1].moved)
    labels = dataset.sequences[0].labels
    static = [x.value for x in labels if not x.dynamic]
    fixed = [x.value for x in labels if not x.dynamic and x.name not in moved]

    def check(si, i, sj, j, ids):
        di, li, Ti = data[si][1][i]
        dj, lj, Tj = data[sj][1][j]
        return consistency(di, dj, li, lj, K, Ti, Tj, ids)

    for si, i, sj, j in frame_pairs():
        median, behind, count = check(si, i, sj, j, static)
        assert count > 2000 and median < 0.01 and behind < 0.05, (si, i, sj, j, median, behind, count)
    results = [(check(1, i, 2, j, fixed), i, j) for i in range(0, FRAMES, 4) for j in range(0, FRAMES, 4)]
    (median, behind, count), i, j = max(results, key=lambda r: r[0][2])
    assert count > 2000 and median < 0.01 and behind < 0.05, (i, j, median, behind, count)


def test_geometric_consistency_in_memory(dataset):
    """The same with the summary's poses and the decoded depth of our reader; a wrong pose breaks it."""
    seq = dataset.sequences[0]
    with OpenLORISBag(seq.bag) as bag:
        frames = list(bag.rgbd_frames())
        labels = [decode_image(m.msg) for m in bag.bag.messages([LABELS])]
    static_ids = [x.value for x in seq.labels if not x.dynamic]
    K = dataset.camera.K
    i, j = 2, FRAMES - 3
    median, behind, count = consistency(frames[i].depth, frames[j].depth, labels[i], labels[j], K,
                                        seq.T_world_cam[i], seq.T_world_cam[j], static_ids)
    assert median < 0.01 and behind < 0.05 and count > 2000
    nudged = seq.T_world_cam[j] @ pose_matrix([0.0, 0.0, 0.05], [0.0, 0.0, 0.0, 1.0])   # 5 cm forward
    median, behind, _ = consistency(frames[i].depth, frames[j].depth, labels[i], labels[j], K,
                                    seq.T_world_cam[i], nudged, static_ids)
    assert median > 0.01


def test_people_are_flagged_dynamic(dataset):
    seq = dataset.sequences[0]
    people = {x.value for x in seq.labels if x.dynamic}
    assert people and all(v & DYNAMIC for v in people)
    assert all(not x.value & DYNAMIC for x in seq.labels if not x.dynamic)


@pytest.mark.parametrize('compression', ['bz2', 'lz4'])
def test_compressed_bags_hold_the_same_messages(tmp_path, compression):
    kwargs = dict(scene='corridor', sequences=1, frames=3, width=160, height=120, seed=5, progress=False)
    plain = generate(tmp_path / 'none', compression='none', **kwargs)
    packed = generate(tmp_path / compression, compression=compression, **kwargs)
    assert packed.bags[0].stat().st_size < plain.bags[0].stat().st_size
    a, b = read_bag(plain.bags[0]), read_bag(packed.bags[0])
    assert a['counts'] == b['counts']
    for topic in (COLOR, DEPTH, LABELS):
        for (ta, ma), (tb, mb) in zip(a['msgs'][topic], b['msgs'][topic]):
            assert ta == tb and np.array_equal(decode_image(ma), decode_image(mb))
