"""The two-node ROS graph (``feature_node`` -> ``frontend_node``) fed a synthetic OpenLORIS-style bag in real time.

Real rclpy in one process (the test harness ``test/ros_env.py``): the bag's camera info, static transforms and
wheel odometry are published first, then each colour/depth pair at its own time, at 10 Hz (every third frame) or
30 Hz (every frame), without waiting for the nodes. Both nodes run with the OpenLORIS preset
(``config/openloris.yaml``: ``queue_size`` 2, ``odom_prior``), the front end with local mapping in its own thread
(the default) and with ``sequential: true``. Per run: frames played, frames the front end reported (its
``/diagnostics``), frames dropped by each node's queue, keyframes, the front end's ms per frame, and the ATE RMSE of
the published poses against the bag's ground truth.

Bag: office, 424x240, 300 frames (10 s), no walking people, the other challenges on (the case of issue P10).

    python benchmarks/bench_nodes.py [--frames 300]
"""
import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'test'))
from ros_env import Graph, Recorder, bag_messages, ros_session  # noqa: E402 (the test harness)

from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from geometry_msgs.msg import PoseStamped  # noqa: E402
from nav_msgs.msg import Odometry  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image  # noqa: E402
from tf2_msgs.msg import TFMessage  # noqa: E402

from rapnet_loc.eval.tum import tum_metrics  # noqa: E402
from rapnet_loc.geometry import find_chain, invert  # noqa: E402
from rapnet_loc.io.openloris import OpenLORISBag  # noqa: E402
from rapnet_loc.io.source import open_source  # noqa: E402
from rapnet_loc.io.trajectory import Trajectory  # noqa: E402
from rapnet_loc.nodes import qos  # noqa: E402
from rapnet_loc.nodes.convert import pose_to_matrix, stamp_ns  # noqa: E402
from rapnet_loc.nodes.feature_node import IMAGE_TOPIC, FeatureNode  # noqa: E402
from rapnet_loc.nodes.frontend_node import CAMERA_INFO_TOPIC, DEPTH_TOPIC, ODOM_TOPIC, FrontendNode  # noqa: E402
from rapnet_loc.nodes.outputs import DIAGNOSTIC_NAME  # noqa: E402
from rapnet_loc.synth import Challenges, generate  # noqa: E402

PRESET = Path(__file__).resolve().parents[1] / 'config' / 'openloris.yaml'
TOPICS = {IMAGE_TOPIC: Image, DEPTH_TOPIC: Image, CAMERA_INFO_TOPIC: CameraInfo, '/tf_static': TFMessage,
          ODOM_TOPIC: Odometry}


def preset(node: str) -> list[Parameter]:
    return [Parameter(k, value=v) for k, v in yaml.safe_load(PRESET.read_text())[node]['ros__parameters'].items()]


def run(bag: Path, messages: list, rate: float, step: int, sequential: bool, gt, T_bc) -> str:
    """Play every ``step``-th colour/depth pair at ``rate`` Hz through the graph; a line of numbers."""
    with ros_session() as context:
        graph = Graph(context)
        try:
            features = graph.add(FeatureNode(context=context, parameter_overrides=preset('feature_node')))
            frontend = graph.add(FrontendNode(context=context, parameter_overrides=[
                *preset('frontend_node'), Parameter('sequential', value=sequential)]))
            player = graph.node('player')
            rec = Recorder(player, {'/diagnostics': (DiagnosticArray, qos.RELIABLE),
                                    '/rapnet_loc/pose': (PoseStamped, qos.RELIABLE)})
            pubs = {IMAGE_TOPIC: player.create_publisher(Image, IMAGE_TOPIC, qos.RELIABLE),
                    DEPTH_TOPIC: player.create_publisher(Image, DEPTH_TOPIC, qos.RELIABLE),
                    CAMERA_INFO_TOPIC: player.create_publisher(CameraInfo, CAMERA_INFO_TOPIC, qos.LATCHED),
                    '/tf_static': player.create_publisher(TFMessage, '/tf_static', qos.TF_STATIC),
                    ODOM_TOPIC: player.create_publisher(Odometry, ODOM_TOPIC, qos.ODOMETRY)}
            for topic in ('/tf_static', CAMERA_INFO_TOPIC, ODOM_TOPIC):
                for t, msg in messages:
                    if t == topic:
                        pubs[t].publish(msg)
            n_odom = sum(t == ODOM_TOPIC for t, _ in messages)
            wait(lambda: frontend.camera is not None and frontend.static_tf.transforms
                 and len(frontend.odometry.stamps_ns) == n_odom and features.sub.get_publisher_count(), 30)
            pairs = [(c, d) for (tc, c), (td, d) in zip(messages, messages[1:])
                     if tc == IMAGE_TOPIC and td == DEPTH_TOPIC][::step]
            start = time.monotonic()
            for i, (color, depth) in enumerate(pairs):
                time.sleep(max(0.0, start + i / rate - time.monotonic()))
                pubs[IMAGE_TOPIC].publish(color)
                pubs[DEPTH_TOPIC].publish(depth)

            def reported() -> int:
                return sum(s.name == DIAGNOSTIC_NAME for m in rec['/diagnostics'] for s in m.status)
            dropped = lambda: frontend.rejected['dropped'] + features.rejected['dropped']    # noqa: E731
            wait(lambda: reported() + dropped() >= len(pairs), 60)
            time.sleep(0.5)
            values = [{kv.key: kv.value for kv in s.values} for m in rec['/diagnostics'] for s in m.status
                      if s.name == DIAGNOSTIC_NAME]
            ms = np.array([float(v['ms']) for v in values])
            poses = {stamp_ns(m.header.stamp): invert(T_bc) @ pose_to_matrix(m.pose) for m in rec['/rapnet_loc/pose']}
            ate = float('nan')
            if len(poses) > 2:
                est = Trajectory.from_matrices(sorted(poses), np.array([poses[s] for s in sorted(poses)]))
                ate = 100 * tum_metrics(est, Trajectory.from_matrices(*gt)).ate_rmse
            return (f'played {len(pairs)}, reported {len(values)}, dropped {frontend.rejected["dropped"]} '
                    f'(front end) + {features.rejected["dropped"]} (feature node), posed {len(poses)}, '
                    f'{sum(v["keyframe"] == "True" for v in values)} keyframes; front end ms median '
                    f'{np.median(ms):.1f}, p95 {np.percentile(ms, 95):.1f}; ATE {ate:.2f} cm')
        finally:
            graph.close()


def wait(predicate, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.01)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--frames', type=int, default=300)
    args = parser.parse_args()
    print(f'{platform.processor() or platform.machine()}, {len(os.sched_getaffinity(0))} cores, load '
          f'{os.getloadavg()[0]:.2f}')
    with tempfile.TemporaryDirectory() as tmp:
        bag = generate(tmp, scene='office', sequences=1, frames=args.frames, width=424, height=240, seed=0,
                       challenges=Challenges(people=0), compression='none', progress=False).bags[0]
        messages = [(t, m) for t, _, m in bag_messages(bag, TOPICS)]
        with open_source(bag) as source:
            gt = source.ground_truth()
        with OpenLORISBag(bag) as ob:
            T_bc = find_chain(ob.static_transforms(), 'base_link', 'd400_color')
        for rate, step in ((10, 3), (30, 1)):
            for sequential in (True, False):
                line = run(bag, messages, rate, step, sequential, gt, T_bc)
                print(f'{rate} Hz, {"sequential" if sequential else "threaded  "}: {line}', flush=True)


if __name__ == '__main__':
    main()
