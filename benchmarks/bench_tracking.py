"""RGB-D front-end speed and accuracy on 7-Scenes redkitchen frames 0-499 (../shared/data), 640x480, 1000 ORB.

Frames are decoded before timing; the per-frame time is ``System.process`` (feature extraction, tracking, and on
keyframes local mapping with bundle adjustment). Prints the median and 90th percentile wall-clock ms per frame,
the median CPU ms per frame (all threads of the process; OpenCV's ORB uses two, so the wall time grows when other
processes hold the cores), the ORB extraction time alone, the share of frames tracked and the ATE RMSE against the
7-Scenes poses.

    python benchmarks/bench_tracking.py [--frames N]
"""
import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np

from rapnet_loc.io.source import open_source
from rapnet_loc.eval.tum import tum_metrics
from rapnet_loc.features import create_extractor
from rapnet_loc.io.trajectory import Trajectory
from rapnet_loc.slam import System

DATA = Path(__file__).resolve().parents[1].parent / 'shared' / 'data' / '7scenes-redkitchen-seq01-dev'


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--frames', type=int, default=500, help='frames from the start (default: 500)')
    args = parser.parse_args()
    if not DATA.is_dir():
        print(f'skipped: {DATA} not found')
        return
    source = open_source(DATA, (0, args.frames - 1))
    frames = list(source.frames())
    extractor = create_extractor('orb')
    extract_ms = []
    for frame in frames[::10]:
        start = time.perf_counter()
        extractor.extract(frame.color)
        extract_ms.append(1000 * (time.perf_counter() - start))
    system = System(source.camera, depth_info=source.depth_camera)
    results, cpu_ms = [], []
    for frame in frames:
        start = time.process_time()
        results.append(system.process(frame))
        cpu_ms.append(1000 * (time.process_time() - start))
    ms = np.array([r.ms for r in results])
    tracked = [r for r in results if r.T_wc is not None]
    stamps, poses = source.ground_truth()
    est = Trajectory.from_matrices([r.stamp_ns for r in tracked], np.array([r.T_wc for r in tracked]))
    ate = tum_metrics(est, Trajectory.from_matrices(stamps, poses)).ate_rmse
    print(f'{platform.processor() or platform.machine()}: 7-Scenes redkitchen frames 0-{len(frames) - 1}, '
          f'640x480, ORB 1000')
    print(f'  per frame: median {np.median(ms):.1f} ms, p90 {np.percentile(ms, 90):.1f} ms, max {ms.max():.0f} ms; '
          f'CPU median {np.median(cpu_ms):.1f} ms (ORB extraction alone: median {np.median(extract_ms):.1f} ms)')
    print(f'  load average during the run: {os.getloadavg()[0]:.2f}')
    print(f'  tracked {len(tracked)}/{len(results)} ({100 * len(tracked) / len(results):.1f} %), '
          f'{sum(r.keyframe for r in results)} keyframes, ATE RMSE {100 * ate:.2f} cm')


if __name__ == '__main__':
    main()
