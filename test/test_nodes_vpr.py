"""vpr_node with real rclpy: it localizes a map's frames with the map's ``patchnetvlad`` recognizer and publishes
``/rapnet_loc/vpr_pose``, from which frontend_node (localizing on the same map with a recognizer that never
recognizes anything, so that only the VPR pose can place it) relocalizes at start and after a kidnap. vpr_node
reads its images from its own topic (a remap), so that each frame is localized there before the front end gets it.
``kidnap_through`` plays that trial for any node of ``rapnet_loc.nodes.pose_node`` (landmark_node too)."""
import copy

import numpy as np
import plugins  # noqa: F401 (registers test_never_recognizes)
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseWithCovarianceStamped
from ros_env import Recorder, bag_messages, graph, ros_context, wait_for  # noqa: F401 (fixtures)
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image
from test_nodes_frontend import BAG_TOPICS, OUTPUTS, Player, connect, diagnostics_stamps, frontend, scene  # noqa: F401

from rapnet_loc.errors import ConfigError, MapFormatError
from rapnet_loc.geometry import invert
from rapnet_loc.io.source import open_source
from rapnet_loc.nodes import qos
from rapnet_loc.nodes.convert import pose_to_matrix, stamp_ns, to_stamp
from rapnet_loc.nodes.feature_node import IMAGE_TOPIC
from rapnet_loc.nodes.frontend_node import CAMERA_INFO_TOPIC, DEPTH_TOPIC
from rapnet_loc.nodes.vpr_node import CANDIDATES_TOPIC, DIAGNOSTIC_NAME, POSE_TOPIC, VprNode
from rapnet_loc.slam.config import SlamConfig
from rapnet_loc.slam.run import replay

BEFORE, AFTER = range(0, 5), range(12, 18)      # frames played before the kidnap and after it
VPR_IMAGES = '/vpr/image_raw'


@pytest.fixture(scope='module')
def vpr_map(scene):
    """The scene's bag mapped by ``rapnet-loc replay --map-out`` with ``patchnetvlad``, and the replay's poses."""
    path = scene['dir'] / 'patchnetvlad.map'
    config = SlamConfig.load(scene['config']).override(place_recognition='patchnetvlad')
    with open_source(scene['bag']) as source:
        replay(source, config, scene['dir'] / 'vpr_replay', map_out=path, sequential=True)
    return path


def kidnap_through(graph, scene, map_path, pose_node, prior_sub: int, pose_topic: str, diagnostic_topic: str,
                   images_topic: str, max_error: float) -> dict:
    """Play frames ``BEFORE``, a black frame (the kidnap) and frames ``AFTER`` of ``scene['bag']`` into
    ``pose_node`` (reading ``images_topic``) and into a front end localizing on ``map_path`` with a place
    recognizer that never recognizes anything, each frame to the pose node first; check that the front end is placed
    by the pose node's poses alone, at the first frame and right after the kidnap, and that both the front end's
    poses and the pose node's lie within ``max_error`` metres of the replay's, the pose node's standard deviations
    under two thirds of it.

    Returns:
        the pose node's poses {stamp: PoseWithCovarianceStamped} and last diagnostic status.
    """
    node = frontend(graph, scene, Parameter('map_in', value=str(map_path)), Parameter('extract_in_process', value=True),
                    Parameter('place_recognition', value='test_never_recognizes'))
    test = graph.node('pose_test')
    rec = Recorder(test, {**OUTPUTS, pose_topic: (PoseWithCovarianceStamped, qos.RELIABLE),
                          diagnostic_topic: (DiagnosticArray, qos.RELIABLE)})
    player = Player(test)
    pose_images = test.create_publisher(Image, images_topic, qos.RELIABLE)
    connect(graph, node, node.main_sub, node.prior_subs[prior_sub])
    wait_for(lambda: pose_node.sub.get_publisher_count() and pose_node.info_sub.get_publisher_count(), 20,
             'pose node discovery')
    messages = list(bag_messages(scene['bag'], BAG_TOPICS))
    for topic in ('/tf_static', CAMERA_INFO_TOPIC):
        for t, _, msg in messages:
            if t == topic:
                player.pubs[t].publish(msg)
    wait_for(lambda: node.camera is not None and pose_node.camera is not None and pose_node.static_tf.transforms
             and node.static_tf.transforms, 20, 'camera info and /tf_static')
    colors = [msg for t, _, msg in messages if t == IMAGE_TOPIC]
    depths = [msg for t, _, msg in messages if t == DEPTH_TOPIC]
    dt = stamp_ns(colors[1].header.stamp) - stamp_ns(colors[0].header.stamp)
    black = copy.deepcopy(colors[0])
    black.data = bytes(len(colors[0].data))
    played = [(i, colors[i], depths[i]) for i in BEFORE] + [(None, black, depths[0])] + \
             [(i, colors[i], depths[i]) for i in AFTER]
    start = stamp_ns(colors[0].header.stamp)
    states, stamps = {}, []

    def prior_received() -> bool:
        return node.pending_prior is not None or (node.system is not None and node.system._pose_prior is not None)
    for n, (index, color, depth) in enumerate(played):     # stamps go on at the frame rate through the kidnap
        stamp = to_stamp(start + n * dt)
        color, depth = copy.deepcopy(color), copy.deepcopy(depth)
        color.header.stamp = depth.header.stamp = stamp
        stamps.append(stamp_ns(stamp))
        pose_images.publish(color)
        wait_for(lambda: stamps[-1] in {stamp_ns(m.header.stamp) for m in rec[diagnostic_topic]}, 60,
                 f'frame {n} to be localized by the pose node')
        if index is not None:
            wait_for(prior_received, 20, f'the pose of frame {n} to reach the front end')
        player.pubs[IMAGE_TOPIC].publish(color)
        player.pubs[DEPTH_TOPIC].publish(depth)
        wait_for(lambda: stamps[-1] in diagnostics_stamps(rec), 60, f'frame {n} to be tracked')
        if index is not None:      # its pose is another topic: it may reach the recorder after the diagnostics
            wait_for(lambda: stamps[-1] in {stamp_ns(m.header.stamp) for m in rec['/rapnet_loc/pose']}, 20,
                     f'the pose of frame {n}')
        states[n] = next(m.status[0].message for m in rec['/diagnostics']
                         if m.status[0].name != pose_node.DIAGNOSTIC_NAME and stamp_ns(m.header.stamp) == stamps[-1])

    poses = {stamp_ns(m.header.stamp): m for m in rec[pose_topic]}
    kidnap = len(BEFORE)
    assert stamps[kidnap] not in poses, 'no pose for the black frame'
    assert set(poses) >= {stamps[n] for n in range(len(played)) if n != kidnap}, 'a pose for every other frame'
    # the front end never recognizes a place itself: it is placed at its first frame and right after the kidnap
    # by the pose node's pose of that frame
    assert states[0] == 'relocalized' and states[kidnap] == 'lost' and states[kidnap + 1] == 'relocalized', states
    assert all(states[n] in ('ok', 'relocalized') for n in range(len(played)) if n != kidnap), states

    T_bc = scene['T_base_cam']
    want = {s: T for s, T in zip(scene['replay'].stamps_ns, scene['replay'].matrices)}
    tracked = {stamp_ns(m.header.stamp): invert(T_bc) @ pose_to_matrix(m.pose) for m in rec['/rapnet_loc/pose']}
    for n, (index, color, _) in enumerate(played):
        if index is None:
            continue
        original = stamp_ns(color.header.stamp)
        assert np.linalg.norm(tracked[stamps[n]][:3, 3] - want[original][:3, 3]) < max_error, (n, index)
        node_cam = invert(T_bc) @ pose_to_matrix(poses[stamps[n]].pose.pose) @ T_bc
        assert np.linalg.norm(node_cam[:3, 3] - want[original][:3, 3]) < max_error, (n, index)
        covariance = np.array(poses[stamps[n]].pose.covariance).reshape(6, 6)
        assert np.all(np.linalg.eigvalsh(covariance) > 0) and np.sqrt(covariance[0, 0]) < 2 * max_error / 3
    last = next(m for m in rec[diagnostic_topic] if stamp_ns(m.header.stamp) == stamps[-1]).status[0]
    return {'poses': poses, 'status': last}


def test_frontend_relocalizes_from_the_vpr_pose_after_a_kidnap(graph, scene, vpr_map):
    vpr = graph.add(VprNode(context=graph.context, parameter_overrides=[
        Parameter('map_file', value=str(vpr_map)), Parameter('queue_size', value=10)],
        cli_args=['--ros-args', '-r', f'{IMAGE_TOPIC}:={VPR_IMAGES}']))
    out = kidnap_through(graph, scene, vpr_map, vpr, 1, POSE_TOPIC, CANDIDATES_TOPIC, VPR_IMAGES, max_error=0.03)
    values = {kv.key: kv.value for kv in out['status'].values}
    assert values['pose'] == 'found' and sum(k.startswith('keyframe ') for k in values) == 5
    assert out['status'].name == DIAGNOSTIC_NAME and float(values['ms']) > 0


def test_bad_map_file_is_a_clear_error(graph, tmp_path):
    with pytest.raises(ConfigError, match='vpr_node needs a map file: set the map_file parameter'):
        VprNode(context=graph.context)
    (tmp_path / 'bad.map').write_text('not a map')
    with pytest.raises(MapFormatError, match='bad.map'):
        VprNode(context=graph.context, parameter_overrides=[Parameter('map_file', value=str(tmp_path / 'bad.map'))])
