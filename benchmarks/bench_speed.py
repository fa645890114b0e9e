"""``make bench``: the front end's speed, stage by stage, each number next to a baseline measured in the same run.

1. 7-Scenes redkitchen frames 0-499 (../shared/data, 640x480, ORB 1000; skipped when absent): decoding; OpenCV's
   ORB alone (``cv2.ORB_create(1000).detectAndCompute``, the baseline) and our ``orb`` extractor; the front end
   ``--sequential`` and threaded (local mapping in its own thread, features read ahead; ``rapnet_loc.slam.run``):
   ms per frame (median, 95th percentile, max, frames over 100 ms), frames per second end to end (decoding
   included), keyframes and ATE RMSE against the 7-Scenes poses; the ``xfeat`` extractor alone at 640x480.
2. A profile (cProfile) of the sequential front end on frames 0-149, by stage: extraction, tracking (motion model,
   local map), keyframe creation, local mapping and its bundle adjustment, relocalization and place recognition.
3. A synthetic OpenLORIS-style bag (office, 424x240, 300 frames at 30 Hz, no people, the other challenges on;
   ``rapnet_loc.synth``) with the wheel odometry as motion prior (``--odom-prior``, as the OpenLORIS preset): the
   same front end sequential and threaded, then live (``replay --realtime``: frames a busy front end has no time
   for are dropped) at 30 Hz and at 10 Hz (every third frame): frames processed, dropped, keyframes, ATE.
4. Peak resident memory of the process.

    python benchmarks/bench_speed.py [--frames N]
"""
import argparse
import cProfile
import os
import platform
import pstats
import resource
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from rapnet_loc.eval.tum import tum_metrics
from rapnet_loc.features import create_extractor
from rapnet_loc.io.source import open_source
from rapnet_loc.io.trajectory import Trajectory
from rapnet_loc.slam import System
from rapnet_loc.slam.odometry import OdometryPrior
from rapnet_loc.slam.run import process_frames
from rapnet_loc.synth import Challenges, generate

DATA = Path(__file__).resolve().parents[1].parent / 'shared' / 'data' / '7scenes-redkitchen-seq01-dev'
STAGES = [('extraction', 'extract', 'features/orb.py'),
          ('tracking: motion model', '_track_motion_model', 'slam/tracking.py'),
          ('tracking: local map', '_track_local_map', 'slam/tracking.py'),
          ('keyframe creation + local mapping', '_create_keyframe', 'slam/tracking.py'),
          ('local mapping', 'process', 'slam/local_mapping.py'),
          ('  of which bundle adjustment', 'bundle_adjust', 'slam/optimizer.py'),
          ('relocalization', 'relocalize', 'slam/relocalization.py'),
          ('place recognition (keyframe database)', '__call__', 'slam/keyframe_database.py')]


def ms_stats(ms: np.ndarray) -> str:
    return (f'median {np.median(ms):5.1f} ms, p95 {np.percentile(ms, 95):5.1f} ms, max {ms.max():4.0f} ms, '
            f'{int((ms > 100).sum())} over 100 ms')


def ate_cm(results, ground_truth) -> float:
    tracked = [r for r in results if r.T_wc is not None]
    est = Trajectory.from_matrices([r.stamp_ns for r in tracked], np.array([r.T_wc for r in tracked]))
    return 100 * tum_metrics(est, Trajectory.from_matrices(*ground_truth)).ate_rmse


def run_front_end(camera, depth_camera, frames, ground_truth, threaded: bool, realtime: bool = False,
                  odometry: OdometryPrior | None = None) -> str:
    """One run of the front end; a line of its numbers."""
    system = System(camera, depth_info=depth_camera, threaded=threaded, odometry=odometry)
    start = time.perf_counter()
    results = list(process_frames(system, frames, realtime))
    system.shutdown()
    wall = time.perf_counter() - start
    done = [r for r in results if r.state != 'dropped']
    tracked = sum(r.T_wc is not None for r in done)
    ms = np.array([r.ms for r in done])
    return (f'{ms_stats(ms)}; {len(done) / wall:5.1f} frames/s; processed {len(done)}/{len(results)}, tracked '
            f'{tracked}, {sum(r.keyframe for r in done)} keyframes, ATE {ate_cm(done, ground_truth):.2f} cm')


def seven_scenes(n_frames: int) -> None:
    source = open_source(DATA, (0, n_frames - 1))
    start = time.perf_counter()
    frames = list(source.frames())
    decode_ms = 1000 * (time.perf_counter() - start) / len(frames)
    gt = source.ground_truth()
    print(f'\n### 7-Scenes redkitchen frames 0-{len(frames) - 1}, 640x480')
    print(f'decoding (colour JPEG + depth PNG): {decode_ms:.1f} ms per frame')
    orb = cv2.ORB_create(1000)
    ours = create_extractor('orb')
    base, mine = [], []
    for frame in frames[::5]:
        gray = cv2.cvtColor(frame.color, cv2.COLOR_RGB2GRAY)
        t0 = time.perf_counter()
        orb.detectAndCompute(gray, None)
        t1 = time.perf_counter()
        ours.extract(frame.color)
        t2 = time.perf_counter()
        base.append(1000 * (t1 - t0))
        mine.append(1000 * (t2 - t1))
    print(f'baseline, OpenCV ORB alone (1000): median {np.median(base):.1f} ms; our orb extractor (1000, '
          f'ORB-SLAM2 grid): median {np.median(mine):.1f} ms')
    for threaded in (False, True):
        label = 'threaded  ' if threaded else 'sequential'
        line = run_front_end(source.camera, source.depth_camera, frames, gt, threaded)
        print(f'front end {label}: {line}', flush=True)
    try:
        xfeat = create_extractor('xfeat', {'max_edge': 640})
        xfeat.extract(frames[0].color)
        t = []
        for frame in frames[:20]:
            t0 = time.perf_counter()
            xfeat.extract(frame.color)
            t.append(1000 * (time.perf_counter() - t0))
        print(f'xfeat extractor alone (2000 keypoints, 640x480, CPU): median {np.median(t):.1f} ms')
    except Exception as exc:        # the wheel's absence is reported, the rest of the judge still runs
        print(f'xfeat not measured: {exc}')
    profile(source, frames[:150])


def profile(source, frames) -> None:
    """Cumulative time of each stage (``STAGES``) under cProfile, sequential front end."""
    system = System(source.camera, depth_info=source.depth_camera)
    prof = cProfile.Profile()
    prof.enable()
    for frame in frames:
        system.process(frame)
    prof.disable()
    by_name = {}
    for (path, _, name), (_, calls, _, cumulative, _) in pstats.Stats(prof).stats.items():
        by_name.setdefault((name, Path(path).parent.name + '/' + Path(path).name), (calls, cumulative))
    wall = next(c for (name, where), (_, c) in by_name.items() if name == 'process' and where == 'slam/system.py')
    print(f'\n### profile: sequential front end, 7-Scenes frames 0-{len(frames) - 1} (cProfile; {wall:.1f} s '
          f'in System.process)')
    print('| stage | calls | ms per call | share of System.process |')
    print('|---|---|---|---|')
    for label, name, where in STAGES:
        if (name, where) in by_name:
            calls, cumulative = by_name[(name, where)]
            print(f'| {label} | {calls} | {1000 * cumulative / calls:.1f} | {100 * cumulative / wall:.0f} % |')


def synthetic_bag(out: Path) -> None:
    bag = generate(out, scene='office', sequences=1, frames=300, width=424, height=240, seed=0,
                   challenges=Challenges(people=0), compression='none', progress=False).bags[0]
    with open_source(bag) as source:
        frames, gt, odometry = list(source.frames()), source.ground_truth(), source.odometry()
        camera, depth_camera = source.camera, source.depth_camera
    print('\n### synthetic OpenLORIS-style bag: office, 424x240, 300 frames at 30 Hz, no people (other challenges on), '
          'wheel odometry as motion prior')
    for realtime, rate, subset in ((False, 30, frames), (True, 30, frames), (True, 10, frames[::3])):
        for threaded in (False, True):
            label = f'{"live" if realtime else "every frame"} {rate} Hz, {"threaded" if threaded else "sequential"}'
            line = run_front_end(camera, depth_camera, subset, gt, threaded, realtime, OdometryPrior(*odometry))
            print(f'{label:32s}: {line}', flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--frames', type=int, default=500, help='7-Scenes frames from the start (default: 500)')
    args = parser.parse_args()
    print(f'{platform.processor() or platform.machine()}, {len(os.sched_getaffinity(0))} cores, load average '
          f'{os.getloadavg()[0]:.2f} at the start')
    if DATA.is_dir():
        seven_scenes(args.frames)
    else:
        print(f'7-Scenes part skipped: {DATA} not found')
    with tempfile.TemporaryDirectory() as tmp:
        synthetic_bag(Path(tmp))
    print(f'\npeak resident memory: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB; '
          f'load average at the end {os.getloadavg()[0]:.2f}')


if __name__ == '__main__':
    main()
