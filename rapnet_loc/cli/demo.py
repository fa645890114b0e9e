"""``rapnet-loc demo``: generate a synthetic OpenLORIS-style scene, replay it and print the official metrics.

Until the visual front end lands, the replayed trajectory is the bags' wheel odometry (``/odom``), the baseline
that OpenLORIS-Scene also reports; each sequence is scored on its own, as the dataset's per-sequence results are.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from rapnet_loc.cli.evaluate import format_table
from rapnet_loc.eval.openloris import evaluate_file
from rapnet_loc.eval.plots import plot_openloris
from rapnet_loc.io.openloris import OpenLORISBag
from rapnet_loc.io.trajectory import OpenLORISResult, Trajectory, write_openloris
from rapnet_loc.synth.generate import generate


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser('demo', help='synthetic scene -> replay -> official metrics and plots',
                       description=__doc__)
    p.add_argument('--out', type=Path, default=Path('demo_out'), help='output folder (default: demo_out)')
    p.add_argument('--scene', default='home', help='synthetic scene layout (default: home)')
    p.add_argument('--sequences', type=int, default=2)
    p.add_argument('--frames', type=int, default=300, help='frames per sequence (30 Hz)')
    p.add_argument('--width', type=int, default=640)
    p.add_argument('--height', type=int, default=480)
    p.add_argument('--seed', type=int, default=0)
    return p


def odometry_result(bag: Path, scene: str, seq: int) -> OpenLORISResult:
    """The wheel odometry of one bag as an OpenLORIS result (frame ``base_link``)."""
    with OpenLORISBag(bag) as reader:
        stamps, poses = reader.odometry()
    return OpenLORISResult(info={'scene': scene, 'slam': 'wheel-odometry', 'frame': 'base_link'},
                           sequences={seq: Trajectory.from_matrices(stamps, poses)})


def run(args: argparse.Namespace) -> int:
    data_dir = args.out / 'data'
    summary = generate(data_dir, scene=args.scene, sequences=args.sequences, frames=args.frames,
                       width=args.width, height=args.height, seed=args.seed)
    print(f'generated {len(summary.bags)} sequence(s) in {data_dir}')
    for seq, bag in enumerate(summary.bags, 1):
        result_path = args.out / 'results' / f'odom-{bag.stem}.txt'
        write_openloris(result_path, odometry_result(bag, args.scene, seq))
        ev = evaluate_file(result_path, data_dir)
        print(f'\nwheel odometry, {bag.name}:')
        print(format_table(ev))
        for png in plot_openloris(ev, args.out / 'plots', result_path.stem):
            print(f'plot: {png}')
    return 0
