"""``rapnet-loc synth``: generate a synthetic OpenLORIS-style scene (ROS 1 bags, ground truth, calibration).

Writes ``OUT/NAME1-K.bag`` for K = 1..N, ``OUT/gt_NAME_1.txt`` and ``OUT/calibration.yaml``; with
``--frames-folder DIR`` also every frame as a posed, labelled 7-Scenes-style folder (RaP-Net training data,
``rapnet_loc.synth.frames``).
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

from rapnet_loc.io.atomic import check_writable
from rapnet_loc.synth import SCENES, Challenges, generate
from rapnet_loc.synth.bag import COMPRESSIONS
from rapnet_loc.synth.frames import write_training_folder
from rapnet_loc.synth.path import PATH_STYLES

LOG = logging.getLogger(__name__)
_DEFAULTS = Challenges()
_SWITCHES = {
    'repetitive': 'repetitive textures: tiled floor, patterned carpet, identical pillars and doors',
    'featureless': 'featureless walls: some walls one flat colour without posters',
    'illumination': 'illumination changes: brightness per sequence, gain/gamma drift, a light switched off',
    'moved_furniture': 'furniture moved between sequences',
    'motion_blur': 'motion blur along the image-plane motion during the exposure',
}


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser('synth', help='generate synthetic OpenLORIS-style RGB-D bags',
                                   description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument('--out', required=True, help='output folder')
    parser.add_argument('--scene', default='home', help=f'scene layout: {", ".join(SCENES)}')
    parser.add_argument('--sequences', type=int, default=2, help='number of sequences (bags)')
    parser.add_argument('--frames', type=int, default=300, help='frames per sequence (30 Hz)')
    parser.add_argument('--width', type=int, default=848, help='image width')
    parser.add_argument('--height', type=int, default=480, help='image height')
    parser.add_argument('--seed', type=int, default=0, help='random seed (same seed, same bytes)')
    parser.add_argument('--compression', default='bz2', help=f'bag chunk compression: {", ".join(COMPRESSIONS)}')
    parser.add_argument('--path', default='explore', choices=PATH_STYLES,
                        help='robot path: explore = routes to far goals (nearly straight in 10 s); loop = laps '
                             'through the start that turn and, from about 20 s on, close loops and revisit places')
    parser.add_argument('--people', type=int, default=_DEFAULTS.people, help='walking people per sequence')
    for name, text in _SWITCHES.items():
        parser.add_argument(f'--{name.replace("_", "-")}', dest=name, action=argparse.BooleanOptionalAction,
                            default=getattr(_DEFAULTS, name), help=text)
    parser.add_argument('--no-challenges', action='store_true',
                        help='static, evenly lit, textured scene: every challenge off (overrides the switches)')
    parser.add_argument('--frames-folder', type=Path, metavar='DIR',
                        help='also write every frame into DIR in the 7-Scenes layout (colour, depth, labels, poses)')
    parser.add_argument('--no-progress', action='store_true', help='hide the progress bar')
    return parser


def run(args: argparse.Namespace) -> int:
    check_writable(args.out, '--out folder', folder=True)
    if args.frames_folder:
        check_writable(args.frames_folder, '--frames-folder', folder=True)
    challenges = Challenges.none() if args.no_challenges else Challenges(
        people=args.people, **{name: getattr(args, name) for name in _SWITCHES})
    summary = generate(args.out, scene=args.scene, sequences=args.sequences, frames=args.frames,
                       width=args.width, height=args.height, seed=args.seed, challenges=challenges,
                       compression=args.compression, progress=not args.no_progress, path=args.path)
    for path in summary.bags:
        print(path)
    print(summary.gt_path)
    print(summary.calibration_path)
    if args.frames_folder:
        n = write_training_folder(summary.bags, args.frames_folder, progress=not args.no_progress)
        print(f'{n} frames written to {args.frames_folder}')
    LOG.info('rendered %d frames in %.1f s (total %.1f s)', len(summary.bags) * args.frames, summary.render_s,
             summary.total_s)
    return 0
