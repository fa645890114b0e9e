"""Map-based localization on 7-Scenes redkitchen (../shared/data), 640x480: ``rapnet-loc build-map`` on frames 0-349
with the ground-truth poses, then every frame of 350-499 localized on its own against that map (the code of
``rapnet-loc localize``).

Prints the map size and build time, the share of frames localized, the median translation (cm) and rotation (deg)
errors of the localized frames against the 7-Scenes poses (no alignment: the map is in their frame) with their 90th
percentiles, and the median wall-clock ms per frame (feature extraction, candidate search, PnP-RANSAC, pose
optimisation and local-map refinement; not image decoding).

    python benchmarks/bench_localize.py [--features orb] [--place-recognition bow] [--map-frames 0:349]
        [--query-frames 350:499]
"""
import argparse
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
from rapnet_loc.slam.run import build_map, localize_frames, make_estimator, open_map

DATA = Path(__file__).resolve().parents[1].parent / 'shared' / 'data' / '7scenes-redkitchen-seq01-dev'


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--features', default='orb')
    parser.add_argument('--place-recognition', default='bow')
    parser.add_argument('--map-frames', default='0:349')
    parser.add_argument('--query-frames', default='350:499')
    args = parser.parse_args()
    if not DATA.is_dir():
        print(f'skipped: {DATA} not found')
        return
    with tempfile.TemporaryDirectory() as tmp:
        map_path = Path(tmp) / 'map.npz'
        start = time.perf_counter()
        with open_source(DATA, args.map_frames) as source:
            build_map(source, SlamConfig.resolve(None, args.features, args.place_recognition), KeyframePolicy(),
                      map_path)
        build_s = time.perf_counter() - start
        map_file, config = open_map(map_path, pose_estimator='map')
    with open_source(DATA, args.query_frames) as source:
        results = localize_frames(source, make_estimator(config, source.camera, source.depth_camera, map_file))
        stamps, poses = source.ground_truth()
    gt = dict(zip(stamps.tolist(), poses))
    done = [r for r in results if r.estimate is not None]
    est = np.array([r.estimate.T_wc for r in done]).reshape(-1, 4, 4)
    ref = np.array([gt[r.stamp_ns] for r in done]).reshape(-1, 4, 4)
    t_cm = 100 * np.linalg.norm(est[:, :3, 3] - ref[:, :3, 3], axis=1)
    r_deg = np.degrees(rotation_angle(np.swapaxes(ref[:, :3, :3], 1, 2) @ est[:, :3, :3]))
    ms = np.array([r.ms for r in results])
    print(f'{platform.processor() or platform.machine()}: 7-Scenes redkitchen, map from frames {args.map_frames}, '
          f'queries {args.query_frames}, {args.features}, {args.place_recognition} place recognition')
    print(f'  command: {sys.executable} {" ".join(sys.argv)}')
    print(f'  map: {len(map_file.map.keyframes)} keyframes, {int((~map_file.map.points.bad).sum())} points, '
          f'built in {build_s:.1f} s')
    print(f'  localized {len(done)}/{len(results)} ({100 * len(done) / max(len(results), 1):.1f} %)')
    if done:
        print(f'  error: median {np.median(t_cm):.2f} cm / {np.median(r_deg):.2f} deg, '
              f'p90 {np.percentile(t_cm, 90):.1f} cm / {np.percentile(r_deg, 90):.1f} deg')
    print(f'  per frame: median {np.median(ms):.1f} ms, p90 {np.percentile(ms, 90):.1f} ms')
    print(f'  load average during the run: {os.getloadavg()[0]:.2f}')


if __name__ == '__main__':
    main()
