"""frontend_node with real rclpy on a synthetic OpenLORIS-style bag: the same poses as ``rapnet-loc replay``, REP 105
TF, sim time, the feature node swapped for another publisher, pose priors and map services (issue 5, acceptance 1-3)."""
import copy
import threading
import time

import numpy as np
import plugins  # noqa: F401 (registers the test place recognizers and pose estimator)
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseStamped, PoseWithCovarianceStamped
from nav_msgs.msg import Odometry, Path
from ros_env import Recorder, bag_messages, graph, ros_context, wait_for  # noqa: F401 (fixtures)
from rclpy.parameter import Parameter
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from std_srvs.srv import Trigger
from tf2_msgs.msg import TFMessage
from visualization_msgs.msg import MarkerArray

from rapnet_loc.errors import ConfigError
from rapnet_loc.features.base import create_extractor
from rapnet_loc.geometry import find_chain, invert
from rapnet_loc.io.openloris import OpenLORISBag
from rapnet_loc.io.source import open_source
from rapnet_loc.io.trajectory import Trajectory, interpolate_poses, read_tum, write_tum
from rapnet_loc.nodes import outputs, qos
from rapnet_loc.nodes.convert import matrix_to_pose, pose_to_matrix, stamp_ns, to_stamp, transform_to_matrix
from rapnet_loc.nodes.feature_cloud import decode_features, encode_features
from rapnet_loc.nodes.feature_node import FEATURES_TOPIC, IMAGE_TOPIC, FeatureNode
from rapnet_loc.nodes.frontend_node import CAMERA_INFO_TOPIC, DEPTH_TOPIC, ODOM_TOPIC, FrontendNode
from rapnet_loc.nodes.odometry import LiveOdometry
from rapnet_loc.nodes.outputs import DIAGNOSTIC_NAME
from rapnet_loc.slam.config import SlamConfig
from rapnet_loc.slam.map_io import load_map
from rapnet_loc.slam.run import replay
from rapnet_loc.synth import Challenges, generate

FRAMES = 20
CONFIG = """features: {name: orb, conf: {max_keypoints: 800}}
local_mapping: {ba_window: 4, ba_iterations: 3}
"""
OUTPUTS = {'/rapnet_loc/pose': (PoseStamped, qos.RELIABLE), '/rapnet_loc/odometry': (Odometry, qos.RELIABLE),
           '/rapnet_loc/path': (Path, qos.RELIABLE), '/rapnet_loc/map_points': (MarkerArray, qos.LATCHED),
           '/diagnostics': (DiagnosticArray, qos.RELIABLE), '/tf': (TFMessage, qos.TF)}
BAG_TOPICS = {IMAGE_TOPIC: Image, DEPTH_TOPIC: Image, CAMERA_INFO_TOPIC: CameraInfo, '/tf_static': TFMessage,
              ODOM_TOPIC: Odometry}


@pytest.fixture(scope='module')
def scene(tmp_path_factory):
    """A 20-frame bag (no walking people, which the tracker can follow in the first frames of a map), its test
    configuration, and what ``rapnet-loc replay --sequential`` computes on it."""
    root = tmp_path_factory.mktemp('frontend')
    bag = generate(root, scene='home', sequences=1, frames=FRAMES, width=320, height=240, compression='none',
                   challenges=Challenges(people=0), progress=False).bags[0]
    config = root / 'config.yaml'
    config.write_text(CONFIG)
    with open_source(bag) as source:
        replay(source, SlamConfig.load(config), root / 'replay', sequential=True)
    with OpenLORISBag(bag) as ob:
        T_base_cam = find_chain(ob.static_transforms(), 'base_link', 'd400_color')
        gt = ob.ground_truth()
        first = next(ob.rgbd_frames())
    return {'bag': bag, 'config': config, 'replay': read_tum(root / 'replay' / 'trajectory.tum'),
            'T_base_cam': T_base_cam, 'gt': gt, 'first': first, 'dir': root}


def diagnostics_stamps(rec: Recorder) -> list[int]:
    return [stamp_ns(m.header.stamp) for m in rec['/diagnostics'] if m.status[0].name == DIAGNOSTIC_NAME]


class Player:
    """Publishes a bag's messages in lockstep with the front end: latched topics and odometry first, then each
    colour/depth pair (with /clock at its stamp) once the front end has reported the previous frame."""

    def __init__(self, node, color_topic: str = IMAGE_TOPIC):
        self.pubs = {IMAGE_TOPIC: node.create_publisher(Image, color_topic, qos.RELIABLE),
                     DEPTH_TOPIC: node.create_publisher(Image, DEPTH_TOPIC, qos.RELIABLE),
                     CAMERA_INFO_TOPIC: node.create_publisher(CameraInfo, CAMERA_INFO_TOPIC, qos.LATCHED),
                     '/tf_static': node.create_publisher(TFMessage, '/tf_static', qos.TF_STATIC),
                     ODOM_TOPIC: node.create_publisher(Odometry, ODOM_TOPIC, qos.ODOMETRY)}
        self.clock = node.create_publisher(Clock, '/clock', qos.RELIABLE)

    def play(self, bag, rec: Recorder, on_color=None, node=None) -> list[int]:
        """Colour stamps played; ``on_color(msg)`` may replace publishing a colour image. With the front-end
        ``node``, frames start once it holds the camera info, the static transforms and all the odometry (messages
        of different topics may arrive in any order)."""
        messages = list(bag_messages(bag, BAG_TOPICS))
        for topic in ('/tf_static', CAMERA_INFO_TOPIC, ODOM_TOPIC):
            for t, _, msg in messages:
                if t == topic:
                    self.pubs[t].publish(msg)
        if node is not None:
            n_odom = sum(t == ODOM_TOPIC for t, _, _ in messages)
            wait_for(lambda: node.camera is not None and node.static_tf.transforms
                     and len(node.odometry.stamps_ns) == n_odom, 20, 'camera info, /tf_static and /odom')
        stamps = []
        for topic, _, msg in messages:
            if topic == IMAGE_TOPIC:
                stamps.append(stamp_ns(msg.header.stamp))
                self.clock.publish(Clock(clock=msg.header.stamp))
                (on_color or self.pubs[IMAGE_TOPIC].publish)(msg)
            elif topic == DEPTH_TOPIC:
                self.pubs[DEPTH_TOPIC].publish(msg)
                wait_for(lambda: stamps[-1] in diagnostics_stamps(rec), 60, f'frame {len(stamps)} to be tracked')
        return stamps


def frontend(graph, scene, *overrides, cli_args=None):
    params = [Parameter('features', value='orb'), Parameter('config_file', value=str(scene['config'])),
              Parameter('queue_size', value=10), *overrides]
    return graph.add(FrontendNode(context=graph.context, parameter_overrides=params, cli_args=cli_args))


def connect(graph, node, *extra_subs):
    wait_for(lambda: node.depth_sub.get_publisher_count() and node.info_sub.get_publisher_count()
             and node.pubs['diagnostics'].get_subscription_count() and all(s.get_publisher_count() for s in extra_subs),
             20, 'discovery')


def assert_same_poses_as_replay(rec: Recorder, scene, atol: float = 2e-6) -> dict[int, np.ndarray]:
    """Camera poses published (T_map_cam) -> T_wc, checked equal to replay's (``--sequential``) within ``atol`` on
    each matrix entry; returns {stamp: T_map_base}."""
    T_bc = scene['T_base_cam']
    want = scene['replay']
    # the last frame's diagnostics may overtake its pose (another topic)
    wait_for(lambda: len(rec['/rapnet_loc/pose']) >= len(want), 10, 'the pose of every tracked frame')
    got = {stamp_ns(m.header.stamp): invert(T_bc) @ pose_to_matrix(m.pose) for m in rec['/rapnet_loc/pose']}
    assert len(want) >= FRAMES // 2
    assert sorted(got) == list(want.stamps_ns)
    np.testing.assert_allclose(np.array([got[s] for s in want.stamps_ns]), want.matrices, atol=atol)
    return {s: T_bc @ T @ invert(T_bc) for s, T in got.items()}


def test_frontend_tracks_like_replay_with_rep105_tf_and_sim_time(graph, scene):
    """With ``sequential: true`` the node computes what ``replay --sequential`` does, to the last digit."""
    feature_node = graph.add(FeatureNode(context=graph.context, parameter_overrides=[
        Parameter('features', value='orb'), Parameter('config_file', value=str(scene['config'])),
        Parameter('queue_size', value=10), Parameter('use_sim_time', value=True)]))
    node = frontend(graph, scene, Parameter('use_sim_time', value=True), Parameter('sequential', value=True))
    test = graph.node('frontend_test')
    rec = Recorder(test, {**OUTPUTS, FEATURES_TOPIC: (PointCloud2, qos.SENSOR)})
    player = Player(test)
    connect(graph, node, node.main_sub, feature_node.sub)
    stamps = player.play(scene['bag'], rec, node=node)

    T_map_base = assert_same_poses_as_replay(rec, scene)
    # sim time: the node's clock follows /clock; every output is stamped with its input's stamp
    assert node.get_clock().now().nanoseconds == stamps[-1]
    for topic in ('/rapnet_loc/pose', '/rapnet_loc/odometry', '/diagnostics', '/rapnet_loc/features'):
        assert {stamp_ns(m.header.stamp) for m in rec[topic]} <= set(stamps), topic
    assert diagnostics_stamps(rec) == stamps
    tf_stamps = [stamp_ns(t.header.stamp) for m in rec['/tf'] for t in m.transforms]
    assert set(tf_stamps) <= set(stamps) and tf_stamps
    # odometry output: the base in the map frame, same pose
    for m in rec['/rapnet_loc/odometry']:
        assert (m.header.frame_id, m.child_frame_id) == ('map', 'base_link')
        np.testing.assert_allclose(pose_to_matrix(m.pose.pose), T_map_base[stamp_ns(m.header.stamp)], atol=1e-9)
    # the path and map points are other topics, which may lag the last frame's pose
    wait_for(lambda: rec['/rapnet_loc/path'] and len(rec['/rapnet_loc/path'][-1].poses) == len(T_map_base), 10,
             'the path of every tracked frame')
    wait_for(lambda: rec['/rapnet_loc/map_points'], 10, 'map points')
    assert rec['/rapnet_loc/map_points'][-1].markers[0].points

    # REP 105: map -> odom composed with /odom at the image stamp is the base pose, and follows the ground truth
    with OpenLORISBag(scene['bag']) as ob:
        odom = ob.odometry()

    def map_odom_tf() -> dict[int, np.ndarray]:
        return {stamp_ns(t.header.stamp): transform_to_matrix(t.transform) for m in rec['/tf'] for t in m.transforms
                if (t.header.frame_id, t.child_frame_id) == ('map', 'odom')}
    # /odom ends before the last image (the node warns, publishes no map -> odom); /tf may lag like the path
    wait_for(lambda: len(map_odom_tf()) >= len(T_map_base) - 1, 10, 'map -> odom of every frame /odom covers')
    map_odom = map_odom_tf()
    odom_at = interpolate_poses(*odom, sorted(map_odom))
    composed = {s: map_odom[s] @ T for s, T in zip(odom_at.stamps_ns, odom_at.matrices)}
    for s, T in composed.items():
        np.testing.assert_allclose(T, T_map_base[s], atol=1e-6)
    gt = interpolate_poses(*scene['gt'], sorted(composed))
    gt_rel = invert(gt.matrices[0]) @ gt.matrices        # the map frame is the base at the first frame
    replay_err = np.linalg.norm(np.array([T_map_base[s][:3, 3] for s in gt.stamps_ns]) - gt_rel[:, :3, 3], axis=1)
    tf_err = np.linalg.norm(np.array([composed[s][:3, 3] for s in gt.stamps_ns]) - gt_rel[:, :3, 3], axis=1)
    np.testing.assert_allclose(tf_err, replay_err, atol=1e-6)
    assert tf_err.max() < 0.03, 'TF map -> odom composed with /odom follows the ground truth'

    # the feature cloud decodes back to the extractor's output on the same image
    config = SlamConfig.load(scene['config'])
    first = min(rec[FEATURES_TOPIC], key=lambda m: stamp_ns(m.header.stamp))
    want = create_extractor('orb', config.feature_conf).extract(scene['first'].color)
    got = decode_features(first, FEATURES_TOPIC, 1.2, 8)
    for name in ('keypoints', 'scores', 'descriptors', 'levels'):
        np.testing.assert_array_equal(getattr(got, name), getattr(want, name))

    # map services: save, then localize against the saved map
    path = scene['dir'] / 'live.map'
    node.set_parameters([Parameter('map_out', value=str(path)), Parameter('map_in', value=str(path))])
    for name in ('save_map', 'load_map'):
        client = test.create_client(Trigger, f'/frontend_node/{name}')
        assert client.wait_for_service(timeout_sec=10)
        future = client.call_async(Trigger.Request())
        wait_for(future.done, 20, f'{name} to answer')
        assert future.result().success, future.result().message
    assert path.is_file() and node.system is None and node.map_file is not None


def test_feature_node_swapped_for_another_publisher_by_a_remap(graph, scene):
    """The test computes ORB features itself and publishes them on its own topic; only a remap changes. The node
    runs local mapping in its own thread (the default): the same frames are tracked as by ``replay --sequential``,
    each pose within 3 cm (and 0.03 on each rotation entry, about 2 degrees)."""
    node = frontend(graph, scene, cli_args=['--ros-args', '-r', f'{FEATURES_TOPIC}:=/their/features'])
    test = graph.node('swap_test')
    rec = Recorder(test, OUTPUTS)
    features_pub = test.create_publisher(PointCloud2, '/their/features', qos.RELIABLE)
    extractor = create_extractor('orb', SlamConfig.load(scene['config']).feature_conf)
    player = Player(test)
    connect(graph, node, node.main_sub)
    assert node.main_sub.topic_name == '/their/features'

    def publish_features(msg: Image) -> None:
        rgb = np.frombuffer(bytes(msg.data), np.uint8).reshape(msg.height, msg.width, 3)
        features_pub.publish(encode_features(extractor.extract(rgb), msg.header))
    player.play(scene['bag'], rec, publish_features, node=node)
    assert node.system.threaded
    assert_same_poses_as_replay(rec, scene, atol=0.03)


def test_pose_priors_place_the_map(graph, scene):
    """A VPR-style pose before the first frame puts the map there (/initialpose and landmark poses take the same
    path); a prior in another frame is rejected and logged."""
    node = frontend(graph, scene, Parameter('extract_in_process', value=True))
    test = graph.node('prior_test')
    rec = Recorder(test, OUTPUTS)
    priors = {t: test.create_publisher(PoseWithCovarianceStamped, t, qos.RELIABLE)
              for t in ('/initialpose', '/rapnet_loc/vpr_pose')}
    player = Player(test)
    connect(graph, node, node.main_sub, *node.prior_subs[:2])
    wrong = PoseWithCovarianceStamped()
    wrong.header.frame_id = 'odom'
    wrong.pose.pose.orientation.w = 1.0
    priors['/initialpose'].publish(wrong)
    wait_for(lambda: node.rejected['bad_input'] == 1, 10, 'the prior in the odom frame to be rejected')
    T_prior = np.eye(4)
    T_prior[:3, 3] = [2.0, -1.0, 0.0]
    T_prior[:2, :2] = [[0.0, -1.0], [1.0, 0.0]]
    prior = PoseWithCovarianceStamped()
    prior.header.frame_id = 'map'
    prior.pose.pose = matrix_to_pose(T_prior)
    priors['/rapnet_loc/vpr_pose'].publish(prior)
    wait_for(lambda: node.pending_prior is not None, 10, 'the VPR pose to arrive')
    player.play(scene['bag'], rec, node=node)
    first = min(rec['/rapnet_loc/odometry'], key=lambda m: stamp_ns(m.header.stamp))
    np.testing.assert_allclose(pose_to_matrix(first.pose.pose), T_prior, atol=1e-9)
    assert stamp_ns(first.header.stamp) == stamp_ns(to_stamp(int(scene['first'].stamp_ns)))


def test_place_recognizer_and_pose_estimator_by_parameter(graph, scene):
    """The test plug-ins (test/plugins.py) chosen by parameter: a map is built and saved with the
    ``test_mean_descriptor`` recognizer; localizing on it with a recognizer that never recognizes, the frames are
    placed from the ``test_trajectory`` estimator's poses (the ground truth), and follow them."""
    path = scene['dir'] / 'plugins.map'
    node = frontend(graph, scene, Parameter('place_recognition', value='test_mean_descriptor'),
                    Parameter('map_out', value=str(path)), Parameter('extract_in_process', value=True))
    test = graph.node('plugins_test')
    rec, player = Recorder(test, OUTPUTS), Player(test)
    connect(graph, node, node.main_sub)
    player.play(scene['bag'], rec, node=node)
    client = test.create_client(Trigger, '/frontend_node/save_map')
    assert client.wait_for_service(timeout_sec=10)
    future = client.call_async(Trigger.Request())
    wait_for(future.done, 20, 'save_map to answer')
    assert future.result().success, future.result().message
    assert load_map(path).recognizer.name == 'test_mean_descriptor'
    graph.remove(node)

    with OpenLORISBag(scene['bag']) as ob:
        stamps, T_world_base = ob.ground_truth()
    T_bc = scene['T_base_cam']
    gt = interpolate_poses(stamps, T_world_base @ T_bc, [s for s in scene['replay'].stamps_ns])
    gt = Trajectory.from_matrices(gt.stamps_ns, invert(gt.matrices[0]) @ gt.matrices)   # the map's world: frame 1
    write_tum(scene['dir'] / 'gt.tum', gt)
    config = scene['dir'] / 'estimator.yaml'
    config.write_text(CONFIG + f"pose_estimator: {{name: test_trajectory, conf: {{trajectory: "
                               f"'{scene['dir'] / 'gt.tum'}'}}}}\n")
    node = frontend(graph, scene, Parameter('config_file', value=str(config)), Parameter('map_in', value=str(path)),
                    Parameter('place_recognition', value='test_never_recognizes'),
                    Parameter('pose_estimator', value='test_trajectory'), Parameter('extract_in_process', value=True))
    rec = Recorder(test, OUTPUTS)
    connect(graph, node, node.main_sub)
    player.play(scene['bag'], rec, node=node)
    wait_for(lambda: len(rec['/rapnet_loc/pose']) >= len(gt) - 1, 10, 'the pose of every frame')
    got = {stamp_ns(m.header.stamp): invert(T_bc) @ pose_to_matrix(m.pose) for m in rec['/rapnet_loc/pose']}
    ref = dict(zip(gt.stamps_ns.tolist(), gt.matrices))
    assert len(got) >= len(gt) - 1 and max(np.linalg.norm(T[:3, 3] - ref[s][:3, 3]) for s, T in got.items()) < 0.03
    assert node.system.keyframe_db.recognizer.name == 'test_never_recognizes'
    assert len(node.system.map.keyframes) == len(load_map(path).map.keyframes), 'localization does not map'


def test_pose_estimator_needs_the_image(graph, scene):
    with pytest.raises(ConfigError, match='needs extract_in_process: true'):
        frontend(graph, scene, Parameter('pose_estimator', value='test_trajectory'))


def test_while_lost_map_to_odom_is_held_and_poses_carry_their_covariance(graph, scene):
    """Frames 8-10 black (lost): the diagnostics say so, map -> odom keeps the last value at their stamps, and the
    front end relocalizes after them. Every published pose carries the finite covariance of its pose optimisation
    (centimetres here, rotated with the pose into the map frame) and the ``first map`` anchor."""
    node = frontend(graph, scene, Parameter('extract_in_process', value=True))
    test = graph.node('hold_test')
    rec, player = Recorder(test, OUTPUTS), Player(test)
    connect(graph, node, node.main_sub)
    played, black = [], []

    def black_out(msg: Image) -> None:
        if len(played) in (8, 9, 10):
            msg = copy.deepcopy(msg)
            msg.data = bytes(len(msg.data))
            black.append(stamp_ns(msg.header.stamp))
        played.append(stamp_ns(msg.header.stamp))
        player.pubs[IMAGE_TOPIC].publish(msg)
    stamps = player.play(scene['bag'], rec, black_out, node=node)
    values = {stamp_ns(m.header.stamp): {kv.key: kv.value for kv in m.status[0].values} for m in rec['/diagnostics']
              if m.status[0].name == DIAGNOSTIC_NAME}
    assert [values[s]['anchor'] for s in black] == ['lost'] * 3 and [values[s]['state'] for s in black] == ['lost'] * 3
    after = stamps[stamps.index(black[-1]) + 1]
    assert values[after]['state'] == 'relocalized'
    assert {values[s]['anchor'] for s in stamps if s not in black} == {'first map'}

    def map_odom_tf() -> dict[int, np.ndarray]:
        return {stamp_ns(t.header.stamp): transform_to_matrix(t.transform) for m in rec['/tf'] for t in m.transforms
                if (t.header.frame_id, t.child_frame_id) == ('map', 'odom')}
    wait_for(lambda: set(black) | {after} <= set(map_odom_tf()), 10, 'map -> odom of the lost frames')
    held = map_odom_tf()
    before = stamps[stamps.index(black[0]) - 1]
    for s in black:
        np.testing.assert_array_equal(held[s], held[before])

    wait_for(lambda: len(rec['/rapnet_loc/odometry']) >= len(stamps) - len(black), 10, 'every pose')
    for m in rec['/rapnet_loc/odometry']:
        cov = np.array(m.pose.covariance).reshape(6, 6)
        assert np.isfinite(cov).all() and np.allclose(cov, cov.T) and np.linalg.eigvalsh(cov).min() > 0
        assert np.sqrt(np.diag(cov)[:3]).max() < 0.05


def test_jumps_of_map_to_odom_are_measured():
    T = np.eye(4)
    moved = T.copy()
    moved[:3, 3] = [0.3, 0.0, 0.4]
    assert outputs.jump(None, moved, 0.02, 1.0) is None
    assert outputs.jump(T, T, 0.02, 1.0) is None
    assert outputs.jump(T, moved, 0.02, 1.0) == pytest.approx((0.5, 0.0))
    turned = T.copy()
    turned[:2, :2] = [[np.cos(0.1), -np.sin(0.1)], [np.sin(0.1), np.cos(0.1)]]
    assert outputs.jump(T, turned, 0.02, 1.0) == pytest.approx((0.0, np.degrees(0.1)))
    assert outputs.jump(T, turned, 0.02, 10.0) is None


def test_a_frame_waits_for_the_odometry_that_brackets_it():
    """An image arrives before the odometry after its stamp: ``odom_wait`` lets the frame wait for it (a 30 Hz
    camera with 20 Hz odometry otherwise lost the prior on 2 frames of 3); without live odometry nothing waits."""
    odometry = LiveOdometry(np.eye(4), window_s=10.0)
    t0, ms = 1_700_000_000 * 10**9, 10**6
    start = time.monotonic()
    assert not odometry.wait_to_cover(t0, 5.0), 'no odometry yet: no wait'
    odometry.add(t0, np.eye(4))
    ahead = np.eye(4)
    ahead[0, 3] = 0.05
    threading.Timer(0.2, odometry.add, (t0 + 50 * ms, ahead)).start()
    assert odometry.at(t0 + 30 * ms) is None
    assert odometry.wait_to_cover(t0 + 30 * ms, 5.0), 'covered once the next odometry message came'
    assert odometry.at(t0 + 30 * ms)[0, 3] == pytest.approx(0.03)
    assert not odometry.wait_to_cover(t0 + 2 * 10**9, 5.0), 'the newest odometry is 2 s old: not live, no wait'
    assert time.monotonic() - start < 4.0, 'only the frame whose odometry was on its way waited'
