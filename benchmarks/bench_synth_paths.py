"""The RGB-D front end on synthetic sequences by robot path style (``rapnet-loc synth --path explore|loop``).

For each scene and seed, one sequence of ``--frames`` frames at 640x480 is generated per path style (repetitive
textures, featureless walls, illumination changes and motion blur on; ``--people`` walking people, none by default,
so that the path is what changes), replayed through the front end with its defaults (``rapnet-loc replay``) and
scored by the official OpenLORIS metrics (the sequence aligned to its ground truth by positions alone, as the
official tool does) and by the TUM ATE (SE(3) alignment). The seeds are fixed before any run: 0 and 1 for every
scene. Printed per sequence: path spread (second over first singular value of the camera positions; near 0 on a
line, where the official alignment cannot fix the rotation about it), frames tracked, official correct rate and
ATE, TUM ATE (none where the tracked positions are degenerate, e.g. on one line), keyframes, and median / mean ms
per frame.

    python benchmarks/bench_synth_paths.py [--scenes office home cafe market] [--seeds 0 1] [--frames 300]
        [--people 0] [--paths explore loop]
"""
import argparse
import json
import logging
import os
import platform
import tempfile
from datetime import date
from pathlib import Path

from rapnet_loc.eval.openloris import evaluate_file
from rapnet_loc.io.source import open_source
from rapnet_loc.slam.config import SlamConfig
from rapnet_loc.slam.run import replay
from rapnet_loc.synth import Challenges, generate
from rapnet_loc.synth.generate import path_spread
from rapnet_loc.synth.path import PATH_STYLES


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--scenes', nargs='+', default=['office', 'home', 'cafe', 'market'])
    parser.add_argument('--seeds', nargs='+', type=int, default=[0, 1])
    parser.add_argument('--frames', type=int, default=300)
    parser.add_argument('--people', type=int, default=0)
    parser.add_argument('--paths', nargs='+', choices=PATH_STYLES, default=list(PATH_STYLES[::-1]))
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    challenges = Challenges(people=args.people, moved_furniture=False)
    print(f'# {date.today()} on {platform.node()} ({platform.processor() or platform.machine()}, '
          f'{len(os.sched_getaffinity(0))} cores); {args.frames} frames 640x480, {args.people} people, repetitive '
          'textures, featureless walls, illumination changes and motion blur on')
    print('| scene | seed | path | spread | tracked | correct rate | official ATE (m) | TUM ATE (m) | keyframes | '
          'ms median / mean |')
    print('|---|---|---|---|---|---|---|---|---|---|')
    for scene in args.scenes:
        for seed in args.seeds:
            for style in args.paths:
                with tempfile.TemporaryDirectory() as tmp:
                    data = Path(tmp) / 'data'
                    summary = generate(data, scene=scene, sequences=1, frames=args.frames, width=640, height=480,
                                       seed=seed, challenges=challenges, compression='none', progress=False,
                                       path=style)
                    with open_source(summary.bags[0]) as source:
                        replay(source, SlamConfig(), Path(tmp) / 'out')
                    report = json.loads((Path(tmp) / 'out' / 'report.json').read_text())
                    official = evaluate_file(Path(tmp) / 'out' / 'trajectory_openloris.txt', data).sequences[1]
                spread = path_spread(summary.sequences[0].T_world_cam[:, :3, 3])
                ate = f'{report["ate"]["ate_rmse"]:.3f}' if report['ate'] else 'none (degenerate)'
                print(f'| {scene} | {seed} | {style} | {spread:.3f} | {report["tracked"]}/{report["frames"]} | '
                      f'{official.correct_rate:.3f} | {official.ate_rmse:.3f} | {ate} | {report["keyframes"]} | '
                      f'{report["ms_median"]:.0f} / {report["ms_mean"]:.0f} |', flush=True)


if __name__ == '__main__':
    main()
