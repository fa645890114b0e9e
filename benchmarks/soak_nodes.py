"""Soak: the two-node ROS graph (``feature_node`` -> ``frontend_node``) fed a synthetic lifelong run for many minutes.

The scene (``rapnet-loc synth``: office, 424x240, ``loop`` paths, the lifelong challenges on: lighting that drifts
and differs per sequence with a light switched off, furniture moved between sequences, no walking people) has
``--sequences`` sequences. A plan drawn from ``--seed`` before the run plays stretches of 10-40 s of them, one after
another, each from a random frame of a random sequence: every stretch after the first is a kidnap (the robot is
somewhere else with no warning) into another visit's lighting and furniture. Colour/depth pairs go out at 10 Hz
(every third frame of the 30 Hz bags) with their stamps rewritten onto one rising clock; camera info and the
camera mount (``/tf_static``) once at the start. The front end runs with the OpenLORIS preset, local mapping in its
own thread, without the wheel-odometry prior (the kidnaps would make odometry jump).

Every 10 s a row goes to ``OUT/soak.csv``: elapsed time, the resident memory (VmRSS) of each node process, the front
end's counters from its last ``/diagnostics`` (keyframes of the active map, frames dropped by its queue, unpaired
images) and the running counts of frames played, feature messages and front-end reports. At the end:
``OUT/soak.png`` (memory and keyframes over time), the frame accounting (frames the front end paired: reported, or
dropped by its queue; frames the feature node's queue dropped, from its log; the rest were lost in best-effort
sensor-data delivery or left unpaired), the memory
growth over the second half of the run, the share of frames with a published pose and its error in the first map's
frame (``OUT/errors.csv``; ``published.tum`` and ``truth.tum`` in the ground truth's frame), and the exit codes
of the nodes after SIGTERM. The nodes' logs go to ``OUT/feature_node.log`` and ``OUT/frontend_node.log``.

The input (scene, plan, stamps) is a function of ``--seed``; the outputs depend on timing (threads, queue drops).

    python benchmarks/soak_nodes.py [--minutes 30] [--seed 0] [--sequences 3] [--frames 600] [--out soak]
"""
import argparse
import csv
import os
import platform
import re
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from bench_nodes import TOPICS, image_pairs, player_publishers, start_nodes, stop_nodes, wait
from ros_env import Graph, bag_messages, ros_session  # noqa: E402 (the test harness, on the path from bench_nodes)

from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from geometry_msgs.msg import PoseStamped  # noqa: E402
from sensor_msgs.msg import PointCloud2  # noqa: E402

from rapnet_loc.geometry import find_chain, invert  # noqa: E402
from rapnet_loc.io.openloris import OpenLORISBag  # noqa: E402
from rapnet_loc.io.source import open_source  # noqa: E402
from rapnet_loc.io.trajectory import Trajectory, interpolate_poses, write_tum  # noqa: E402
from rapnet_loc.nodes import qos  # noqa: E402
from rapnet_loc.nodes.convert import pose_to_matrix, stamp_ns, to_stamp  # noqa: E402
from rapnet_loc.nodes.feature_node import FEATURES_TOPIC, IMAGE_TOPIC  # noqa: E402
from rapnet_loc.nodes.frontend_node import CAMERA_INFO_TOPIC, DEPTH_TOPIC  # noqa: E402
from rapnet_loc.nodes.outputs import DIAGNOSTIC_NAME  # noqa: E402
from rapnet_loc.synth import Challenges, generate  # noqa: E402

RATE_HZ, STEP = 10.0, 3          # every third pair of the 30 Hz bags, at 10 Hz
STRETCH_S = (10.0, 40.0)         # length of one stretch between kidnaps
SAMPLE_S = 10.0                  # period of the rows of soak.csv
COLUMNS = ('elapsed_s', 'feature_rss_mb', 'frontend_rss_mb', 'keyframes', 'dropped', 'unpaired', 'played',
           'features', 'reported', 'posed')


def plan(pairs_per_sequence: list[int], minutes: float, rng: np.random.Generator) -> list[tuple[int, int, int]]:
    """Stretches ``(sequence, first pair, pairs)`` that fill ``minutes`` at ``RATE_HZ``, drawn from ``rng``."""
    stretches, total = [], 0
    while total < minutes * 60 * RATE_HZ:
        seq = int(rng.integers(len(pairs_per_sequence)))
        length = int(rng.uniform(*STRETCH_S) * RATE_HZ)
        first = int(rng.integers(max(1, pairs_per_sequence[seq] - length)))
        length = min(length, pairs_per_sequence[seq] - first)
        stretches.append((seq, first, length))
        total += length
    return stretches


def rss_mb(pid: int) -> float:
    """Resident memory of process ``pid`` (MB), NaN when it has ended."""
    try:
        for line in Path(f'/proc/{pid}/status').read_text().splitlines():
            if line.startswith('VmRSS:'):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float('nan')


class Counts:
    """What the player hears from the graph: feature messages (counted only), the front end's reports (its last
    values kept) and the published poses by stamp."""

    def __init__(self, player):
        self.lock = threading.Lock()
        self.features = self.reported = 0
        self.last: dict[str, str] = {}
        self.poses: dict[int, np.ndarray] = {}
        self.subs = [player.create_subscription(PointCloud2, FEATURES_TOPIC, self._feature, qos.SENSOR),
                     player.create_subscription(DiagnosticArray, '/diagnostics', self._diagnostics, qos.RELIABLE),
                     player.create_subscription(PoseStamped, '/rapnet_loc/pose', self._pose, qos.RELIABLE)]

    def _feature(self, _msg) -> None:
        with self.lock:
            self.features += 1

    def _diagnostics(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            if status.name == DIAGNOSTIC_NAME:
                with self.lock:
                    self.reported += 1
                    self.last = {kv.key: kv.value for kv in status.values}

    def _pose(self, msg: PoseStamped) -> None:
        with self.lock:
            self.poses[stamp_ns(msg.header.stamp)] = pose_to_matrix(msg.pose)


def restamped(msg, t_ns: int):
    """``msg`` with its header stamp set to ``t_ns`` (in place; the message is published before it is reused)."""
    msg.header.stamp = to_stamp(t_ns)
    return msg


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--minutes', type=float, default=30.0)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--sequences', type=int, default=3)
    parser.add_argument('--frames', type=int, default=600, help='frames per sequence (30 Hz)')
    parser.add_argument('--out', type=Path, default=Path('soak'))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    print(f'{platform.processor() or platform.machine()}, {len(os.sched_getaffinity(0))} cores, load '
          f'{os.getloadavg()[0]:.2f}; command: {sys.executable} {" ".join(sys.argv)}', flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        summary = generate(tmp, scene='office', sequences=args.sequences, frames=args.frames, width=424, height=240,
                           seed=args.seed, challenges=Challenges(people=0), compression='none', progress=False,
                           path='loop')
        sequences, truth = [], []
        for bag in summary.bags:
            messages = list(bag_messages(bag, TOPICS))
            pairs = [(c, d) for _, c, d in image_pairs(messages)[::STEP]]
            sequences.append(pairs)
            with open_source(bag) as source:
                gt = interpolate_poses(*source.ground_truth(), [stamp_ns(c.header.stamp) for c, _ in pairs])
            if len(gt) != len(pairs):
                raise SystemExit(f'{bag}: the ground truth does not cover every frame')
            truth.append(gt.matrices)
        static = [(t, m) for t, _, m in messages if t in ('/tf_static', CAMERA_INFO_TOPIC)]
        with OpenLORISBag(summary.bags[0]) as ob:
            T_bc = find_chain(ob.static_transforms(), 'base_link', 'd400_color')
    stretches = plan([len(p) for p in sequences], args.minutes, np.random.default_rng(args.seed))
    print(f'{len(stretches)} stretches ({len(stretches) - 1} kidnaps), {sum(s[2] for s in stretches)} pairs',
          flush=True)

    nodes = start_nodes({'odom_prior': 'false'}, log_level='warn', log_dir=args.out)
    played_truth: dict[int, np.ndarray] = {}
    rows: list[dict] = []
    with ros_session() as context, open(args.out / 'soak.csv', 'w', newline='') as table:
        writer = csv.DictWriter(table, COLUMNS)
        writer.writeheader()
        graph = Graph(context)
        try:
            player = graph.node('player')
            counts = Counts(player)
            pubs = player_publishers(player)
            wait(lambda: pubs[IMAGE_TOPIC].get_subscription_count() and pubs[DEPTH_TOPIC].get_subscription_count(),
                 60)
            for topic, msg in static:
                pubs[topic].publish(msg)
            time.sleep(2.0)
            clock_ns, played, start = 10**9, 0, time.monotonic()
            next_row = start
            for seq, first, length in stretches:
                for k in range(first, first + length):
                    color, depth = sequences[seq][k]
                    time.sleep(max(0.0, start + played / RATE_HZ - time.monotonic()))
                    offset = stamp_ns(depth.header.stamp) - stamp_ns(color.header.stamp)
                    played_truth[clock_ns] = truth[seq][k]
                    pubs[IMAGE_TOPIC].publish(restamped(color, clock_ns))
                    pubs[DEPTH_TOPIC].publish(restamped(depth, clock_ns + offset))
                    clock_ns += round(1e9 / RATE_HZ)
                    played += 1
                    if time.monotonic() >= next_row:
                        next_row += SAMPLE_S
                        with counts.lock:
                            last = dict(counts.last)
                            row = {'elapsed_s': round(time.monotonic() - start, 1),
                                   'feature_rss_mb': round(rss_mb(nodes[0].pid), 1),
                                   'frontend_rss_mb': round(rss_mb(nodes[1].pid), 1),
                                   'keyframes': last.get('keyframes', 0), 'dropped': last.get('dropped', 0),
                                   'unpaired': last.get('unpaired', 0), 'played': played,
                                   'features': counts.features, 'reported': counts.reported,
                                   'posed': len(counts.poses)}
                        writer.writerow(row)
                        table.flush()
                        rows.append(row)
                        if len(rows) % 30 == 1:
                            print(f'  {row}', flush=True)
            time.sleep(5.0)
            with counts.lock:
                last, features, reported = dict(counts.last), counts.features, counts.reported
                poses = dict(counts.poses)
        finally:
            graph.close()
            codes = stop_nodes(nodes)
    report(args.out, rows, played, features, reported, last, poses, played_truth, T_bc, codes)


def memory_fit(rows: list[dict]) -> tuple[float, float]:
    """Least-squares fit of the front end's resident memory over the second half of ``rows`` (soak.csv) as
    ``a + b * keyframes + c * time``: (b in MB per keyframe, c in MB per 10 minutes)."""
    t = np.array([float(r['elapsed_s']) for r in rows])
    half = t >= t[-1] / 2
    A = np.c_[np.ones(half.sum()), [float(r['keyframes']) for r, h in zip(rows, half) if h], t[half] / 600]
    mb = np.array([float(r['frontend_rss_mb']) for r, h in zip(rows, half) if h])
    coef = np.linalg.lstsq(A, mb, rcond=None)[0]
    return float(coef[1]), float(coef[2])


def report(out: Path, rows: list[dict], played: int, features: int, reported: int, last: dict, poses: dict,
           played_truth: dict, T_bc: np.ndarray, codes: list) -> None:
    """Print the frame accounting, the memory growth and the pose error; plot ``out/soak.png``."""
    dropped, unpaired = int(last.get('dropped', 0)), int(last.get('unpaired', 0))
    log = (out / 'feature_node.log').read_text()
    feature_dropped = max((int(m) for m in re.findall(r'\[dropped: (\d+) so far\]', log)), default=0)
    paired = reported + dropped
    print(f'frames: played {played}; feature_node: its queue dropped {feature_dropped}, the player received '
          f'{features} feature messages; frontend_node: paired {paired} (reported {reported}, its queue dropped '
          f'{dropped}), images left unpaired {unpaired} (depth and features); not paired and not dropped by the '
          f'feature node\'s queue: {played - paired - feature_dropped} (best-effort sensor-data delivery, unpaired)')
    t = np.array([r['elapsed_s'] for r in rows], dtype=float)
    half = t >= t[-1] / 2
    for key in ('feature_rss_mb', 'frontend_rss_mb'):
        mb = np.array([r[key] for r in rows], dtype=float)
        slope = np.polyfit(t[half], mb[half], 1)[0] * 600 if half.sum() > 1 else float('nan')
        print(f'{key}: start {mb[0]:.0f} MB, peak {np.nanmax(mb):.0f} MB, end {mb[-1]:.0f} MB; second half: '
              f'{slope:+.1f} MB per 10 minutes (linear fit)')
    keyframes = np.array([int(r['keyframes']) for r in rows])
    print(f'keyframes of the active map: {keyframes.max()} at most, {keyframes[-1]} at the end')
    per_keyframe, per_10_min = memory_fit(rows)
    print(f'frontend_rss_mb, second half, fitted as a + b keyframes + c minutes: b = {per_keyframe:.3f} MB per '
          f'keyframe, c = {per_10_min:+.2f} MB per 10 minutes (what grows without the map)')
    stamps = sorted(s for s in poses if s in played_truth)
    print(f'posed {len(stamps)} of {played} frames ({100 * len(stamps) / max(played, 1):.1f} %)')
    if stamps:
        # /rapnet_loc/pose is T_map_cam = T_base_cam T_world_cam (frontend_node: the map frame is the base frame at
        # the first camera pose); put in the ground truth's frame by the first posed frame (where the map starts)
        est = {s: invert(T_bc) @ poses[s] for s in stamps}
        align = played_truth[stamps[0]] @ invert(est[stamps[0]])
        cm = np.array([100 * np.linalg.norm((align @ est[s])[:3, 3] - played_truth[s][:3, 3]) for s in stamps])
        print(f'error of the published poses in the first map\'s frame: median {np.median(cm):.2f} cm, p90 '
              f'{np.percentile(cm, 90):.1f} cm, max {cm.max():.1f} cm; within 10 cm: {np.mean(cm <= 10):.1%}')
        np.savetxt(out / 'errors.csv', np.c_[stamps, cm], fmt=['%d', '%.3f'], delimiter=',',
                   header='played stamp (ns),error (cm)', comments='')
        published = np.array([align @ est[s] for s in stamps])
        write_tum(out / 'published.tum', Trajectory.from_matrices(np.array(stamps), published))
        write_tum(out / 'truth.tum', Trajectory.from_matrices(np.array(sorted(played_truth)), np.array(
            [played_truth[s] for s in sorted(played_truth)])))
    print(f'node exit codes after SIGTERM: feature_node {codes[0]}, frontend_node {codes[1]}')
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, (ax_mem, ax_kf) = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
    for key, label in (('feature_rss_mb', 'feature_node'), ('frontend_rss_mb', 'frontend_node')):
        ax_mem.plot(t / 60, [r[key] for r in rows], label=label)
    ax_mem.set_ylabel('resident memory (MB)')
    ax_mem.legend()
    ax_kf.plot(t / 60, keyframes)
    ax_kf.set_ylabel('keyframes (active map)')
    ax_kf.set_xlabel('minutes')
    fig.tight_layout()
    fig.savefig(out / 'soak.png', dpi=100)
    print(f'wrote {out / "soak.csv"} and {out / "soak.png"}')


if __name__ == '__main__':
    main()
