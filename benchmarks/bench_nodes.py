"""The two-node ROS graph (``feature_node`` -> ``frontend_node``) fed a synthetic OpenLORIS-style bag in real time.

Each node runs in a process of its own, as ``ros2 launch`` starts them (``python -m rapnet_loc.nodes.NAME`` with the
OpenLORIS preset ``config/openloris.yaml``: ``queue_size`` 2, ``odom_prior``); the front end with local mapping in
its own thread (the default) and with ``sequential: true``. A player (real rclpy, the test harness
``test/ros_env.py``) publishes the bag's camera info and static transforms first, then, as ``ros2 bag play`` does,
the wheel odometry (20 Hz) and the colour/depth pairs at their receive times: at 10 Hz (every third pair) or 30 Hz
(every pair), without waiting for the nodes. Per run: frames played, feature messages published, frames the front
end reported (its ``/diagnostics``) and the frames its queue dropped, keyframes, the front end's ms per frame, and
the ATE RMSE of the published poses against the bag's ground truth. Frames neither reported nor dropped by the
front end's queue were dropped by the feature node's queue or left unpaired (features and depth are paired by
stamp).

Bag: office, 424x240, 300 frames (10 s), no walking people, the other challenges on (the case of issue P10).

    python benchmarks/bench_nodes.py [--frames 300] [--runs 1]
"""
import argparse
import contextlib
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'test'))
from ros_env import Graph, Recorder, bag_messages, frontend_publishers, ros_session  # noqa: E402 (the test harness)

from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from geometry_msgs.msg import PoseStamped  # noqa: E402
from nav_msgs.msg import Odometry  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image, PointCloud2  # noqa: E402
from tf2_msgs.msg import TFMessage  # noqa: E402

from rapnet_loc.eval.tum import tum_metrics  # noqa: E402
from rapnet_loc.geometry import find_chain, invert  # noqa: E402
from rapnet_loc.io.openloris import OpenLORISBag  # noqa: E402
from rapnet_loc.io.source import open_source  # noqa: E402
from rapnet_loc.io.trajectory import Trajectory  # noqa: E402
from rapnet_loc.nodes import qos  # noqa: E402
from rapnet_loc.nodes.convert import pose_to_matrix, stamp_ns  # noqa: E402
from rapnet_loc.nodes.feature_node import FEATURES_TOPIC, IMAGE_TOPIC  # noqa: E402
from rapnet_loc.nodes.frontend_node import CAMERA_INFO_TOPIC, DEPTH_TOPIC, ODOM_TOPIC  # noqa: E402
from rapnet_loc.nodes.outputs import DIAGNOSTIC_NAME  # noqa: E402
from rapnet_loc.synth import Challenges, generate  # noqa: E402

PRESET = Path(__file__).resolve().parents[1] / 'config' / 'openloris.yaml'
TOPICS = {IMAGE_TOPIC: Image, DEPTH_TOPIC: Image, CAMERA_INFO_TOPIC: CameraInfo, '/tf_static': TFMessage,
          ODOM_TOPIC: Odometry}


def start_nodes(frontend_params: dict[str, str], log_level: str = 'error',
                log_dir: Path | None = None) -> list[subprocess.Popen]:
    """``feature_node`` and ``frontend_node`` as processes on this process's DDS domain (``ros_session``), with the
    OpenLORIS preset and ``frontend_params`` (name: value as ``-p`` takes it) on top; their output goes to
    ``log_dir/NAME.log`` when given."""
    env = {**os.environ, 'ROS_DOMAIN_ID': str(1 + os.getpid() % 100), 'PYTHONUNBUFFERED': '1'}
    args = ['--ros-args', '--params-file', str(PRESET), '--log-level', log_level]
    extra = [item for name, value in frontend_params.items() for item in ('-p', f'{name}:={value}')]
    nodes = []
    for name, more in (('feature_node', []), ('frontend_node', extra)):
        with open(log_dir / f'{name}.log', 'w') if log_dir else contextlib.nullcontext() as log:
            nodes.append(subprocess.Popen([sys.executable, '-m', f'rapnet_loc.nodes.{name}', *args, *more],
                                          env=env, stdout=log, stderr=subprocess.STDOUT if log else None))
    return nodes


def stop_nodes(nodes: list[subprocess.Popen]) -> list[int | None]:
    """SIGTERM to each node (a process started in the background ignores SIGINT), SIGKILL after 30 s; the exit
    codes (None: killed)."""
    for node in nodes:
        node.terminate()
    codes = []
    for node in nodes:
        try:
            codes.append(node.wait(30))
        except subprocess.TimeoutExpired:
            node.kill()
            codes.append(None)
            print(f'{node.args[2]} did not end within 30 s of SIGTERM: killed')
    return codes


def player_publishers(player) -> dict:
    """A publisher of each of ``TOPICS`` on the node ``player``, with the QoS the nodes expect (the front end's image
    inputs from the test harness, ``ros_env.frontend_publishers``)."""
    return {**dict(zip((IMAGE_TOPIC, DEPTH_TOPIC, CAMERA_INFO_TOPIC), frontend_publishers(player))),
            '/tf_static': player.create_publisher(TFMessage, '/tf_static', qos.TF_STATIC),
            ODOM_TOPIC: player.create_publisher(Odometry, ODOM_TOPIC, qos.ODOMETRY)}


def image_pairs(messages: list) -> list[tuple[int, object, object]]:
    """``(receive time ns, colour, depth)`` of each colour image followed by its depth image in ``messages``
    (``(topic, receive time ns, message)`` in bag order)."""
    return [(t, c, d) for (tc, t, c), (td, _, d) in zip(messages, messages[1:])
            if tc == IMAGE_TOPIC and td == DEPTH_TOPIC]


def run(messages: list, step: int, sequential: bool, gt, T_bc) -> str:
    """Play ``messages`` (topic, receive time ns, message) through the two node processes in real time: camera info
    and transforms first, then the odometry and every ``step``-th colour/depth pair at their receive times; a line of
    numbers."""
    nodes = start_nodes({'sequential': str(sequential).lower()})
    with ros_session() as context:
        graph = Graph(context)
        try:
            player = graph.node('player')
            rec = Recorder(player, {'/diagnostics': (DiagnosticArray, qos.RELIABLE),
                                    '/rapnet_loc/pose': (PoseStamped, qos.RELIABLE),
                                    FEATURES_TOPIC: (PointCloud2, qos.SENSOR)})
            pubs = player_publishers(player)
            wait(lambda: pubs[IMAGE_TOPIC].get_subscription_count() and pubs[DEPTH_TOPIC].get_subscription_count()
                 and pubs[ODOM_TOPIC].get_subscription_count(), 60)
            for topic, _, msg in messages:
                if topic in ('/tf_static', CAMERA_INFO_TOPIC):
                    pubs[topic].publish(msg)
            time.sleep(2.0)        # the front end takes in the camera info and the transforms
            pairs = [(t, [(IMAGE_TOPIC, c), (DEPTH_TOPIC, d)]) for t, c, d in image_pairs(messages)[::step]]
            odometry = [(t, [(topic, msg)]) for topic, t, msg in messages if topic == ODOM_TOPIC]
            start, t0 = time.monotonic(), pairs[0][0]
            for t, batch in sorted(pairs + odometry, key=lambda x: x[0]):   # as `ros2 bag play`: at receive times
                time.sleep(max(0.0, start + (t - t0) * 1e-9 - time.monotonic()))
                for topic, msg in batch:
                    pubs[topic].publish(msg)
            last = pairs[-1][1][0][1].header.stamp

            def values() -> list[dict]:
                return [{kv.key: kv.value for kv in s.values} for m in rec['/diagnostics'] for s in m.status
                        if s.name == DIAGNOSTIC_NAME]
            wait(lambda: any(m.header.stamp == last for m in rec['/diagnostics']), 20)
            time.sleep(1.0)
            reported = values()
            ms = np.array([float(v['ms']) for v in reported])
            poses = {stamp_ns(m.header.stamp): invert(T_bc) @ pose_to_matrix(m.pose) for m in rec['/rapnet_loc/pose']}
            ate = float('nan')
            try:
                est = Trajectory.from_matrices(sorted(poses), np.array([poses[s] for s in sorted(poses)]))
                ate = 100 * tum_metrics(est, Trajectory.from_matrices(*gt)).ate_rmse
            except Exception as exc:        # too few poses to align: the ATE stays NaN, the run is reported
                print(f'no ATE: {exc}')
            dropped = int(reported[-1].get('dropped', 0)) if reported else 0
            return (f'played {len(pairs)}, features published {len(rec[FEATURES_TOPIC])}, front end reported '
                    f'{len(reported)} (its queue dropped {dropped}), posed {len(poses)}, '
                    f'{sum(v["keyframe"] == "True" for v in reported)} keyframes; front end ms median '
                    f'{np.median(ms):.1f}, p95 {np.percentile(ms, 95):.1f}; ATE {ate:.2f} cm')
        finally:
            graph.close()
            stop_nodes(nodes)


def wait(predicate, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.01)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--frames', type=int, default=300)
    parser.add_argument('--runs', type=int, default=1,
                        help='runs of each rate and front end (the graph\'s results depend on timing)')
    args = parser.parse_args()
    print(f'{platform.processor() or platform.machine()}, {len(os.sched_getaffinity(0))} cores, load '
          f'{os.getloadavg()[0]:.2f}')
    with tempfile.TemporaryDirectory() as tmp:
        bag = generate(tmp, scene='office', sequences=1, frames=args.frames, width=424, height=240, seed=0,
                       challenges=Challenges(people=0), compression='none', progress=False).bags[0]
        messages = list(bag_messages(bag, TOPICS))
        with open_source(bag) as source:
            gt = source.ground_truth()
        with OpenLORISBag(bag) as ob:
            T_bc = find_chain(ob.static_transforms(), 'base_link', 'd400_color')
        for rate, step in ((10, 3), (30, 1)):
            for sequential in (True, False):
                for _ in range(args.runs):
                    line = run(messages, step, sequential, gt, T_bc)
                    print(f'{rate} Hz, {"sequential" if sequential else "threaded  "}: {line}', flush=True)


if __name__ == '__main__':
    main()
