"""Relocalization after a kidnap under another illumination, by place recognizer, on a synthetic lifelong scene.

A scene with two sequences (``rapnet_loc.synth.generate``: illumination changes between and within sequences; no
people, moved furniture, motion blur, repetitive textures or featureless walls, which test other things: with the
last two, mapping sequence 1 itself fails) is generated for each seed. Sequence 2 starts at a random pose on
sequence 1's path. For each recognizer, sequence 1 is replayed through the front end (``rapnet-loc replay
--place-recognition NAME --map-out``), then the robot is "kidnapped": sequence 2, from ``--kidnap-at`` seconds on,
is replayed in localization mode against that map (the robot is put down in the known map, in other light, with no
pose). Both trajectories form one OpenLORIS
result, scored by the official metrics (``rapnet_loc.slam.kidnap``; the alignment comes from sequence 1, as the
official tool does). Printed per recognizer: frames of sequence 2 until the first correct pose (official ATE/AOE
thresholds), its correct rate, relocalizations, and the tracked share, per seed and their mean.

    python benchmarks/bench_vpr_kidnap.py [--scene home] [--frames 300] [--kidnap-at 0] [--seeds 3 4 5]
        [--recognizers bow patchnetvlad] [--no-illumination]
"""
import argparse
import os
import platform
import tempfile
from datetime import date
from pathlib import Path

import numpy as np

from rapnet_loc.slam.config import SlamConfig
from rapnet_loc.slam.kidnap import kidnap_trial
from rapnet_loc.synth import Challenges, generate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--scene', default='home')
    parser.add_argument('--frames', type=int, default=300)
    parser.add_argument('--kidnap-at', type=float, default=0.0, help='seconds into sequence 2')
    parser.add_argument('--width', type=int, default=640)
    parser.add_argument('--height', type=int, default=480)
    parser.add_argument('--seeds', type=int, nargs='+', default=[3, 4, 5])
    parser.add_argument('--recognizers', nargs='+', default=['bow', 'patchnetvlad'])
    parser.add_argument('--no-illumination', action='store_true', help='no illumination changes either')
    args = parser.parse_args()
    challenges = Challenges(people=0, repetitive=False, featureless=False, moved_furniture=False, motion_blur=False,
                            illumination=not args.no_illumination)
    print(f'# {date.today()} on {platform.node()} ({platform.processor() or platform.machine()}, '
          f'{len(os.sched_getaffinity(0))} cores); scene {args.scene}, 2 x {args.frames} frames '
          f'{args.width}x{args.height}, kidnapped into sequence 2 at {args.kidnap_at:g} s, illumination changes '
          f'{"off" if args.no_illumination else "on"}')
    print('| seed | recognizer | frames to first correct pose | correct rate (seq 2) | relocalizations | tracked | '
          'correct rate (seq 1, mapping) |')
    print('|---|---|---|---|---|---|---|')
    results: dict[str, list[dict]] = {name: [] for name in args.recognizers}
    for seed in args.seeds:
        with tempfile.TemporaryDirectory() as tmp:
            data_dir = Path(tmp) / 'data'
            summary = generate(data_dir, scene=args.scene, sequences=2, frames=args.frames, width=args.width,
                               height=args.height, seed=seed, challenges=challenges, compression='none',
                               progress=False)
            for recognizer in args.recognizers:
                config = SlamConfig().override(place_recognition=recognizer)
                r = kidnap_trial(summary.bags[0], summary.bags[1], data_dir, config, Path(tmp) / recognizer,
                                 args.kidnap_at)
                results[recognizer].append(r)
                print(f'| {seed} | {recognizer} | {r.frames_to_correct or "never"} | {r.correct_rate:.3f} | '
                      f'{r.relocalized} | {r.tracked_ratio:.3f} | {r.mapping_correct_rate:.3f} |', flush=True)
    for recognizer, rs in results.items():
        found = [r.frames_to_correct for r in rs if r.frames_to_correct is not None]
        print(f'| mean | {recognizer} | {np.mean(found) if found else float("nan"):.1f} ({len(found)} of {len(rs)} '
              f'relocalized) | {np.mean([r.correct_rate for r in rs]):.3f} | '
              f'{np.mean([r.relocalized for r in rs]):.1f} | {np.mean([r.tracked_ratio for r in rs]):.3f} | '
              f'{np.mean([r.mapping_correct_rate for r in rs]):.3f} |')


if __name__ == '__main__':
    main()
