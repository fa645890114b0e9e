"""Map-based localization on 7-Scenes redkitchen (../shared/data), 640x480: ``rapnet-loc build-map`` on frames 0-349
with the ground-truth poses, then every frame of 350-499 localized on its own against that map (the code of
``rapnet-loc localize``).

Prints the map size and build time, the share of frames localized, the median translation (cm) and rotation (deg)
errors of the localized frames against the 7-Scenes poses (no alignment: the map is in their frame) with their 90th
percentiles, and the median wall-clock ms per frame (feature extraction, candidate search, PnP-RANSAC, pose
optimisation and local-map refinement; not image decoding).

    python benchmarks/bench_localize.py [--features orb] [--place-recognition bow] [--map-frames 0:349]
        [--query-frames 350:499] [--reloc-ratio R] [--max-keypoints N] [--conf JSON]

``--reloc-ratio`` replaces the relocalization ratio test of every descriptor metric (the default is per metric,
``rapnet_loc.slam.config``); ``--max-keypoints`` the extractor's ``max_keypoints``; ``--conf`` sets more extractor
options (a JSON object, e.g. ``'{"subpixel": true}'``).
"""
import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from rapnet_loc.geometry import rotation_angle
from rapnet_loc.io.source import open_source
from rapnet_loc.slam.config import SlamConfig
from rapnet_loc.slam.map_builder import KeyframePolicy
from rapnet_loc.slam.run import Localized, build_map, localize_frames, make_estimator, open_map

DATA = Path(__file__).resolve().parents[1].parent / 'shared' / 'data' / '7scenes-redkitchen-seq01-dev'


def pose_errors(results: list[Localized], stamps: np.ndarray, poses: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Translation (cm) and rotation (deg) errors (Q,) of every result against the ground truth (``stamps`` (N,)
    ns, camera-to-world ``poses`` (N, 4, 4)); inf where no pose was found."""
    gt = dict(zip(stamps.tolist(), poses))
    t_cm, r_deg = np.full(len(results), np.inf), np.full(len(results), np.inf)
    for n, r in enumerate(results):
        if r.estimate is not None:
            est, ref = r.estimate.T_wc, gt[r.stamp_ns]
            t_cm[n] = 100 * np.linalg.norm(est[:3, 3] - ref[:3, 3])
            r_deg[n] = np.degrees(rotation_angle(ref[:3, :3].T @ est[:3, :3]))
    return t_cm, r_deg


def print_errors(results: list[Localized], stamps: np.ndarray, poses: np.ndarray) -> None:
    """Localized share, median and p90 errors of the localized frames, share within 5 cm / 5 deg and median errors
    of all frames (inf where no pose), and the time per frame."""
    t_cm, r_deg = pose_errors(results, stamps, poses)
    done = np.isfinite(t_cm)
    print(f'  localized {done.sum()}/{len(results)} ({100 * done.sum() / max(len(results), 1):.1f} %)')
    if done.any():
        print(f'  error: median {np.median(t_cm[done]):.2f} cm / {np.median(r_deg[done]):.2f} deg, '
              f'p90 {np.percentile(t_cm[done], 90):.1f} cm / {np.percentile(r_deg[done], 90):.1f} deg; '
              f'within 5 cm / 5 deg: {100 * np.mean((t_cm <= 5) & (r_deg <= 5)):.1f} % of all frames')
    print(f'  median of all frames (no pose counted as a failure): {np.median(t_cm):.2f} cm / '
          f'{np.median(r_deg):.2f} deg')
    ms = np.array([r.ms for r in results])
    print(f'  per frame: median {np.median(ms):.1f} ms, p90 {np.percentile(ms, 90):.1f} ms')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--features', default='orb')
    parser.add_argument('--place-recognition', default='bow')
    parser.add_argument('--map-frames', default='0:349')
    parser.add_argument('--query-frames', default='350:499')
    parser.add_argument('--reloc-ratio', type=float, help='ratio test of relocalization (default: per metric)')
    parser.add_argument('--max-keypoints', type=int, help="the extractor's max_keypoints (default: its own)")
    parser.add_argument('--conf', type=json.loads, default={}, help='more extractor options, a JSON object')
    args = parser.parse_args()
    if not DATA.is_dir():
        print(f'skipped: {DATA} not found')
        return
    with tempfile.TemporaryDirectory() as tmp:
        map_path = Path(tmp) / 'map.npz'
        start = time.perf_counter()
        config = SlamConfig.resolve(None, args.features, args.place_recognition)
        config.feature_conf.update(args.conf)
        if args.max_keypoints is not None:
            config.feature_conf['max_keypoints'] = args.max_keypoints
        if args.reloc_ratio is not None:
            config.tracking.reloc_ratio = dict.fromkeys(config.tracking.reloc_ratio, args.reloc_ratio)
        with open_source(DATA, args.map_frames) as source:
            build_map(source, config, KeyframePolicy(), map_path)
        build_s = time.perf_counter() - start
        map_file, config = open_map(map_path, pose_estimator='map')
    with open_source(DATA, args.query_frames) as source:
        results = localize_frames(source, make_estimator(config, source.camera, source.depth_camera, map_file))
        stamps, poses = source.ground_truth()
    print(f'{platform.processor() or platform.machine()}: 7-Scenes redkitchen, map from frames {args.map_frames}, '
          f'queries {args.query_frames}, {args.features}, {args.place_recognition} place recognition')
    print(f'  command: {sys.executable} {" ".join(sys.argv)}')
    print(f'  map: {len(map_file.map.keyframes)} keyframes, {int((~map_file.map.points.bad).sum())} points, '
          f'built in {build_s:.1f} s')
    print_errors(results, stamps, poses)
    print(f'  load average during the run: {os.getloadavg()[0]:.2f}')


if __name__ == '__main__':
    main()
