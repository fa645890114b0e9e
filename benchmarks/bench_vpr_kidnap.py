"""Relocalization after a kidnap under another illumination, by place recognizer, on a synthetic lifelong scene.

A scene with two sequences (``rapnet_loc.synth.generate``: illumination changes between and within sequences; no
people, moved furniture or motion blur, which test other things) is generated. For each recognizer, sequence 1 is
replayed through the front end (``rapnet-loc replay --place-recognition NAME --map-out``), then the robot is
"kidnapped": sequence 2, from ``--kidnap-at`` seconds on, is replayed in localization mode against that map (the
robot is put down somewhere in the known map, in other light, with no pose). Both trajectories form one OpenLORIS
result, scored by the official metrics (``rapnet_loc.eval.openloris``; the alignment comes from sequence 1, as the
official tool does). Printed per recognizer: frames of sequence 2 until the first correct pose (official ATE/AOE
thresholds), its correct rate, relocalizations, and the tracked share.

    python benchmarks/bench_vpr_kidnap.py [--scene home] [--frames 300] [--kidnap-at 5.0] [--seed 3]
        [--recognizers bow patchnetvlad] [--no-illumination]
"""
import argparse
import os
import platform
import tempfile
from datetime import date
from pathlib import Path

import numpy as np

from rapnet_loc.eval.openloris import evaluate_file
from rapnet_loc.io.source import open_source
from rapnet_loc.io.trajectory import OpenLORISResult, read_openloris, write_openloris
from rapnet_loc.slam.config import SlamConfig
from rapnet_loc.slam.run import open_map, replay
from rapnet_loc.synth import Challenges, generate


def kidnap_trial(map_bag: Path, kidnap_bag: Path, kidnap_at_s: float, config: SlamConfig, out: Path) -> dict:
    """Map ``map_bag`` (``replay`` into ``out/map``, map saved as ``out/map.map``), then kidnap the robot: replay
    ``kidnap_bag`` from ``kidnap_at_s`` seconds on in localization mode against that map (into ``out/kidnapped``).
    Both trajectories are written as one OpenLORIS result, ``out/result_openloris.txt``. Returns the second
    replay's report."""
    with open_source(map_bag) as source:
        replay(source, config, out / 'map', map_out=out / 'map.map')
    map_file, localize_config = open_map(out / 'map.map', place_recognition=config.place_recognition)
    with open_source(kidnap_bag, (kidnap_at_s, None)) as source:
        report = replay(source, localize_config, out / 'kidnapped', map_file=map_file)
    mapped, kidnapped = (read_openloris(out / name / 'trajectory_openloris.txt') for name in ('map', 'kidnapped'))
    write_openloris(out / 'result_openloris.txt',
                    OpenLORISResult(info=mapped.info, sequences={**mapped.sequences, **kidnapped.sequences}))
    return report


def run(recognizer: str, bags: list[Path], data_dir: Path, out: Path, kidnap_at_s: float) -> dict:
    """Map sequence 1 and localize the kidnapped sequence 2 with ``recognizer``; the numbers printed."""
    config = SlamConfig().override(place_recognition=recognizer)
    report = kidnap_trial(bags[0], bags[1], kidnap_at_s, config, out / recognizer)
    ev = evaluate_file(out / recognizer / 'result_openloris.txt', data_dir)
    seq2 = ev.sequences[max(ev.sequences)]
    status = np.genfromtxt(out / recognizer / 'kidnapped' / 'status.csv', delimiter=',', names=True, dtype=None,
                           encoding='utf-8')
    stamps_s = status['stamp'].astype(np.float64)       # seconds
    if seq2.correct.any():
        first_correct = float(seq2.stamps_s[np.argmax(seq2.correct)])
        frames = int(np.searchsorted(stamps_s, first_correct - 1e-6)) + 1
    else:
        frames = None
    return {'frames_to_correct': frames, 'correct_rate': seq2.correct_rate, 'relocalized': report['relocalized'],
            'tracked_ratio': report['tracked_ratio'], 'frames': report['frames'],
            'seq1_correct_rate': ev.sequences[min(ev.sequences)].correct_rate}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--scene', default='home')
    parser.add_argument('--frames', type=int, default=300)
    parser.add_argument('--kidnap-at', type=float, default=5.0, help='seconds into sequence 2')
    parser.add_argument('--width', type=int, default=640)
    parser.add_argument('--height', type=int, default=480)
    parser.add_argument('--seed', type=int, default=3)
    parser.add_argument('--recognizers', nargs='+', default=['bow', 'patchnetvlad'])
    parser.add_argument('--no-illumination', action='store_true', help='no illumination changes either')
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / 'data'
        challenges = Challenges(people=0, moved_furniture=False, motion_blur=False,
                                illumination=not args.no_illumination)
        summary = generate(data_dir, scene=args.scene, sequences=2, frames=args.frames, width=args.width,
                           height=args.height, seed=args.seed, challenges=challenges, compression='none',
                           progress=False)
        print(f'# {date.today()} on {platform.node()} ({platform.processor() or platform.machine()}, '
              f'{len(os.sched_getaffinity(0))} cores); scene {args.scene}, 2 x {args.frames} frames '
              f'{args.width}x{args.height}, seed {args.seed}, kidnapped into sequence 2 at {args.kidnap_at:g} s, '
              f'illumination changes {"off" if args.no_illumination else "on"}')
        print('| recognizer | frames to first correct pose | correct rate (seq 2) | relocalizations | tracked | '
              'correct rate (seq 1, mapping) |')
        print('|---|---|---|---|---|---|')
        for recognizer in args.recognizers:
            r = run(recognizer, summary.bags, data_dir, Path(tmp), args.kidnap_at)
            print(f'| {recognizer} | {r["frames_to_correct"]} | {r["correct_rate"]:.3f} | {r["relocalized"]} | '
                  f'{r["tracked_ratio"]:.3f} | {r["seq1_correct_rate"]:.3f} |', flush=True)


if __name__ == '__main__':
    main()
