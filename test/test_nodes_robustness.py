"""Bad input on the front end's topics is logged, counted in the diagnostics, and the node keeps running (issue 5,
acceptance 5): missing camera info, wrong encoding, depth of another size, out-of-order stamps, a burst faster than
processing; every node runs as a module and refuses bad parameters cleanly, and a SIGINT or SIGTERM ends the front
end node cleanly, with its map saved (issue P11)."""
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from ros_env import (Recorder, camera_info_msg, depth_msg, frontend_publishers, graph,  # noqa: F401
                     image_msg, ros_context, textured_image, wait_for)
from rclpy.parameter import Parameter

from rapnet_loc.nodes import qos
from rapnet_loc.nodes.convert import stamp_ns, to_stamp
from rapnet_loc.nodes.frontend_node import FrontendNode
from rapnet_loc.slam.map_io import load_map

T0 = 1_700_000_000 * 10**9
STEP = 33_333_333


def test_bad_input_is_logged_and_the_front_end_keeps_running(graph, capfd):
    node = graph.add(FrontendNode(context=graph.context, parameter_overrides=[
        Parameter('extract_in_process', value=True), Parameter('queue_size', value=1),
        Parameter('camera_to_base', value=[0.2, 0.0, 0.9, -0.5, 0.5, -0.5, 0.5])]))
    test = graph.node('robustness_test')
    rec = Recorder(test, {'/diagnostics': (DiagnosticArray, qos.RELIABLE)})
    color, depth, info = frontend_publishers(test)
    wait_for(lambda: node.main_sub.get_publisher_count() and node.depth_sub.get_publisher_count(), 20, 'discovery')
    rgb = textured_image(5)

    def frame(i: int, rgb_msg=None, depth_image=None) -> None:
        color.publish(rgb_msg or image_msg(rgb, T0 + i * STEP))
        depth.publish(depth_image or depth_msg(T0 + i * STEP))

    def processed(i: int) -> bool:
        return T0 + i * STEP in [stamp_ns(m.header.stamp) for m in rec['/diagnostics']]

    frame(0)
    wait_for(lambda: node.rejected['no_camera_info'] == 1, 20, 'a frame without camera info to be dropped')
    info.publish(camera_info_msg())
    wait_for(lambda: node.camera is not None, 20, 'camera info')
    frame(1, rgb_msg=image_msg(rgb[:, :, 0].astype(np.float32), T0 + STEP, '32FC1'))
    wait_for(lambda: node.rejected['bad_input'] == 1, 20, 'the wrong colour encoding to be rejected')
    frame(2, depth_image=depth_msg(T0 + 2 * STEP, 160, 120))
    wait_for(lambda: node.rejected['bad_input'] == 2, 20, 'the depth of another size to be rejected')
    frame(4)
    wait_for(lambda: processed(4), 30, 'a good frame to be tracked')
    frame(3)
    wait_for(lambda: node.rejected['out_of_order'] == 1, 20, 'the out-of-order frame to be dropped')
    for i in range(5, 13):
        frame(i)
    wait_for(lambda: processed(12), 60, 'the last frame of the burst to be tracked')
    assert node.rejected['dropped'] >= 1
    assert not processed(3) and not any(processed(i) for i in range(3))
    last = rec['/diagnostics'][-1].status[0]
    values = {kv.key: kv.value for kv in last.values}
    assert last.message == 'ok' and values['tracked'] != '0'
    assert values['bad_input'] == '2' and values['out_of_order'] == '1' and int(values['dropped']) >= 1
    assert rec['/diagnostics'][-1].header.stamp == to_stamp(T0 + 12 * STEP)
    err = capfd.readouterr().err
    for text in ('no camera info received yet', "image encoding '32FC1' on topic '/d400/color/image_raw' is not a "
                 'colour encoding', 'is 160x120, but the camera info says 320x240', 'not after the last processed',
                 'dropped the oldest queued input'):
        assert text in err, text


@pytest.mark.parametrize('node, params, message', [
    ('feature_node', ['-p', 'features:=no_such'], "unknown feature extractor 'no_such'"),
    ('frontend_node', ['-p', 'config_file:=/nonexistent.yaml'], 'cannot read configuration file /nonexistent.yaml'),
    ('vpr_node', [], 'vpr_node needs a map file'),
    ('landmark_node', [], 'landmark_node needs a VS-Net model')])
def test_nodes_run_as_modules_and_refuse_bad_parameters(node, params, message):
    """``python -m rapnet_loc.nodes.NODE`` starts the node (as the console scripts do): a bad parameter ends it with
    the error named and exit status 2, no traceback."""
    run = subprocess.run([sys.executable, '-m', f'rapnet_loc.nodes.{node}', '--ros-args', *params],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and message in run.stdout and 'Traceback' not in run.stderr, run.stderr


@pytest.mark.parametrize('sig', [signal.SIGINT, signal.SIGTERM])
def test_a_signal_ends_the_front_end_node_cleanly_and_saves_its_map(graph, tmp_path, sig):
    """The node process gets a real signal while frames keep coming: it finishes the frame at hand, saves the map
    (``save_map_on_exit``) and exits 0, with no error or traceback (rclpy's own handler shut the context down under
    the publishing worker)."""
    map_out = tmp_path / 'exit.map'
    proc = subprocess.Popen([sys.executable, '-m', 'rapnet_loc.nodes.frontend_node', '--ros-args',
                             '-p', 'extract_in_process:=true', '-p', f'map_out:={map_out}',
                             '-p', 'save_map_on_exit:=true',
                             '-p', 'camera_to_base:=[0.2, 0.0, 0.9, -0.5, 0.5, -0.5, 0.5]'],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, 'ROS_DOMAIN_ID': str(graph.context.get_domain_id())})
    try:
        test = graph.node('signal_test')
        rec = Recorder(test, {'/diagnostics': (DiagnosticArray, qos.RELIABLE)})
        color, depth, info = frontend_publishers(test)
        wait_for(lambda: color.get_subscription_count() and depth.get_subscription_count(), 60, 'the node to start')
        info.publish(camera_info_msg())
        rgb, i = textured_image(5), 0
        while len(rec['/diagnostics']) < 5:
            assert proc.poll() is None and i < 3000, 'the node ended, or tracked nothing'
            color.publish(image_msg(rgb, T0 + i * STEP))
            depth.publish(depth_msg(T0 + i * STEP))
            i += 1
            time.sleep(0.03)
        proc.send_signal(sig)
        for j in range(i, i + 10):       # frames keep coming while it ends
            color.publish(image_msg(rgb, T0 + j * STEP))
            depth.publish(depth_msg(T0 + j * STEP))
            time.sleep(0.03)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr[-3000:]
    for text in ('Traceback', 'RCLError', 'context is invalid', 'processing failed'):
        assert text not in stderr, stderr[-3000:]
    assert f'map saved to {map_out}' in stderr
    assert len(load_map(map_out).map.keyframes) >= 1
