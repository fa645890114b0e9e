"""``rapnet-loc demo``: generate a synthetic OpenLORIS-style scene, run the RGB-D front end over it and print the
official metrics.

The sequence bags run in order through one front end that keeps its map (``rapnet_loc.slam.run.replay_lifelong``,
as ``rapnet-loc replay BAG1 BAG2 ...`` with the default settings: every frame processed), OpenLORIS-Scene's lifelong
setting: each sequence after the first starts lost, somewhere on or off the mapped path, and must relocalize. The
result file (a ``seq:`` block per bag) is scored with the official lifelong metrics: sequence 1 aligned to its
ground truth, the others scored in its frame. The bags' wheel odometry (``/odom``), the baseline that OpenLORIS-Scene
also reports, is scored next to it, each sequence aligned on its own (odometry has no map to come back to). Bags are
written with lz4 chunks: bz2 (the OpenLORIS format's own) takes ten times longer to write and would dominate the
run.

With two sequences or more, a kidnapped robot follows (``rapnet_loc.slam.kidnap``): sequence 1 is mapped with the
``patchnetvlad`` place recognizer, then sequence 2, which starts somewhere on sequence 1's path in other light, is
localized on that map with no pose to start from; the frames until the first correct pose and the official
correct rate and relocalization time are printed.

Outputs in ``--out DIR``: ``data/`` (bags, ground truth, calibration), ``replay/`` (the lifelong result
``trajectory_openloris.txt``, ``report.json`` and ``<bag>/``, each sequence's replay outputs), ``results/`` (the
odometry's OpenLORIS results),
``plots/`` (trajectory and error plots of both) and ``kidnap/`` (the kidnap trial's map and replays).
"""
from __future__ import annotations

import argparse
from contextlib import ExitStack
from pathlib import Path

from rapnet_loc.eval.openloris import evaluate_file
from rapnet_loc.eval.plots import plot_openloris
from rapnet_loc.eval.report import format_table
from rapnet_loc.io.atomic import check_writable
from rapnet_loc.io.openloris import OpenLORISBag
from rapnet_loc.io.source import open_source
from rapnet_loc.io.trajectory import OpenLORISResult, Trajectory, write_openloris
from rapnet_loc.slam.config import SlamConfig
from rapnet_loc.slam.kidnap import kidnap_trial
from rapnet_loc.slam.run import replay_lifelong
from rapnet_loc.synth.generate import generate

COMPRESSION = 'lz4'
KIDNAP_RECOGNIZER = 'patchnetvlad'


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser('demo', help='synthetic scene -> front end -> official metrics and plots',
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
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


def score(result_path: Path, data_dir: Path, plot_dir: Path, stem: str, title: str) -> None:
    """Print the official metrics table of one result file and write its plots ``plot_dir/<stem>_*.png``."""
    ev = evaluate_file(result_path, data_dir)
    print(f'\n{title}:')
    print(format_table(ev))
    for png in plot_openloris(ev, plot_dir, stem):
        print(f'plot: {png}')


def run(args: argparse.Namespace) -> int:
    check_writable(args.out, '--out folder', folder=True)
    data_dir, results_dir, plot_dir = args.out / 'data', args.out / 'results', args.out / 'plots'
    summary = generate(data_dir, scene=args.scene, sequences=args.sequences, frames=args.frames,
                       width=args.width, height=args.height, seed=args.seed, compression=COMPRESSION)
    print(f'generated {len(summary.bags)} sequence(s) in {data_dir} ({summary.total_s:.0f} s)')
    replay_dir = args.out / 'replay'
    print(f'\nreplaying {", ".join(bag.name for bag in summary.bags)} in order through one front end that keeps '
          f'its map (each later sequence starts lost)')
    with ExitStack() as stack:
        sources = [stack.enter_context(open_source(bag)) for bag in summary.bags]
        reports = replay_lifelong(sources, SlamConfig(), replay_dir)['sequences']
    for bag, report in zip(summary.bags, reports):
        print(f'{bag.name}: {report["tracked"]}/{report["frames"]} frames tracked, {report["relocalized"]} '
              f'relocalizations, median {report["ms_median"]:.1f} ms per frame')
    score(replay_dir / 'trajectory_openloris.txt', data_dir, plot_dir, 'rapnet-lifelong',
          'RGB-D front end, lifelong (one map; sequence 1 aligned, the others scored in its frame)')
    for seq, bag in enumerate(summary.bags, 1):
        odom = results_dir / f'odom-{bag.stem}.txt'
        write_openloris(odom, odometry_result(bag, args.scene, seq))
        score(odom, data_dir, plot_dir, odom.stem, f'wheel odometry, {bag.name} (aligned on its own)')
    if len(summary.bags) >= 2:
        kidnap(summary.bags[0], summary.bags[1], data_dir, args.out / 'kidnap')
    return 0


def kidnap(map_bag: Path, kidnap_bag: Path, data_dir: Path, out: Path) -> None:
    """Map ``map_bag`` with ``KIDNAP_RECOGNIZER``, localize ``kidnap_bag`` on it from no pose; print the outcome."""
    print(f'\nkidnapped robot: mapping {map_bag.name} with place recognizer {KIDNAP_RECOGNIZER}, then localizing '
          f'{kidnap_bag.name} on that map with no starting pose')
    r = kidnap_trial(map_bag, kidnap_bag, data_dir, SlamConfig().override(place_recognition=KIDNAP_RECOGNIZER), out)
    found = f'after {r.frames_to_correct} frame(s)' if r.frames_to_correct else 'never'
    print(f'first correct pose {found} (official relocalization time {r.reloc_time_s:.2f} s), correct rate '
          f'{r.correct_rate:.3f}, {r.relocalized} relocalization(s), {r.tracked_ratio:.0%} of frames tracked')
