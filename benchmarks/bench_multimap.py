"""The front end that never stays lost (issue P8, acceptance 1): synthetic lifelong runs, each scene's sequences
through one front end (``rapnet-loc replay BAG1 BAG2 ...``), in three configurations:

- ``single``: today's front end before several maps, which stays lost until it relocalizes
  (``tracking.new_map_after_s: .inf``);
- ``multi-map``: the defaults: a new map after 1 s lost, maps merged when recognized (``rapnet_loc.slam.merging``);
  frames of a map that never joins the first map's frame get no pose;
- ``multi-map + odometry``: the same with ``--odom-prior``: a new map starts at the pose the wheel odometry
  predicts, so its poses are in the first map's frame at once; a loss of up to ``odom_bridge_s`` (2 s) gets the
  odometry's poses (``bridged``); relocalizations and merges within a sequence must agree with the odometry
  (the odometry gate of ``rapnet_loc.slam.tracking``).

Scenes: 640x480, ``loop`` paths (turns, revisits), ``--people`` walking people (3, as the issue asks) and every
challenge on (illumination, repetitive textures, featureless walls, moved furniture, motion blur). Seeds are fixed
by a rule before any run: seed 0 for every scene. Printed per sequence: frames with a pose, the official lifelong
correct rate and relocalization score (sequence 1 aligned, the later ones scored in its frame), new maps started,
frames tracked in a map that never joined the first map's frame (no pose), and the seconds per run.

    python benchmarks/bench_multimap.py [--scenes office home cafe market] [--seed 0] [--sequences 2]
        [--frames 300] [--people 3]
"""
import argparse
import dataclasses
import logging
import os
import platform
import tempfile
import time
from contextlib import ExitStack
from datetime import date
from pathlib import Path

from rapnet_loc.eval.openloris import evaluate_file
from rapnet_loc.io.source import open_source
from rapnet_loc.slam.config import SlamConfig
from rapnet_loc.slam.run import replay_lifelong
from rapnet_loc.synth import Challenges, generate

SINGLE = SlamConfig(tracking=dataclasses.replace(SlamConfig().tracking, new_map_after_s=float('inf')))
VARIANTS = (('single', SINGLE, False), ('multi-map', SlamConfig(), False), ('multi-map + odometry', SlamConfig(), True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--scenes', nargs='+', default=['office', 'home', 'cafe', 'market'])
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--sequences', type=int, default=2)
    parser.add_argument('--frames', type=int, default=300)
    parser.add_argument('--people', type=int, default=3)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    print(f'# {date.today()} on {platform.node()} ({platform.processor() or platform.machine()}, '
          f'{len(os.sched_getaffinity(0))} cores); {args.sequences} x {args.frames} frames 640x480 per scene, loop '
          f'paths, seed {args.seed}, {args.people} people, every challenge on')
    print('| scene | front end | sequence | with a pose | correct rate | reloc score | new maps | unanchored | run s |')
    print('|---|---|---|---|---|---|---|---|---|')
    for scene in args.scenes:
        with tempfile.TemporaryDirectory() as tmp:
            data = Path(tmp) / 'data'
            summary = generate(data, scene=scene, sequences=args.sequences, frames=args.frames, width=640,
                               height=480, seed=args.seed, challenges=Challenges(people=args.people),
                               compression='none', progress=False, path='loop')
            for name, config, odometry in VARIANTS:
                out = Path(tmp) / name
                start = time.perf_counter()
                with ExitStack() as stack:
                    sources = [stack.enter_context(open_source(bag)) for bag in summary.bags]
                    reports = replay_lifelong(sources, config, out, odom_prior=odometry)['sequences']
                seconds = time.perf_counter() - start
                official = evaluate_file(out / 'trajectory_openloris.txt', data).sequences
                for seq, report in enumerate(reports, 1):
                    s = official.get(seq)
                    rate = 'no pose' if s is None else f'{s.correct_rate:.3f}'
                    reloc = '-' if s is None or seq == 1 else f'{s.reloc_score:.3f}'
                    print(f'| {scene} | {name} | {seq} | {report["tracked"]}/{report["frames"]} | {rate} | '
                          f'{reloc} | {report["new_maps"]} | {report["unanchored"]} | {seconds:.0f} |', flush=True)


if __name__ == '__main__':
    main()
