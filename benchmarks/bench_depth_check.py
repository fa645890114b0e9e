"""The depth check of relocalization (``rapnet_loc.slam.relocalization.depths_agree``) on a dev split: how often
right and wrong poses violate free space, the data that ``reloc_max_violations`` is chosen from (issue P8).

For each scene and seed: a synthetic scene (2 sequences, 640x480, ``loop`` paths, 3 people, every challenge on) is
generated; sequence 1 is mapped by the front end; then every ``--step``-th frame of sequences 1 and 2 is tried
against every keyframe of an anchored map (sequence 1 frames only against keyframes more than 2 s away) with
relocalization's checks, the depth check left out. Each pose that passes is labelled by the ground truth (wrong:
over 0.3 m or 15 deg from the true pose) and its violating fraction (``depth_conflicts_both``) recorded. Printed:
per run, the counts and the largest fraction of a right pose; then the pooled numbers and, for each candidate
threshold, the right and wrong poses it would refuse.

Seeds 1 and 2 are the dev split; ``bench_multimap.py`` uses seed 0 only.

    python benchmarks/bench_depth_check.py [--scenes home office cafe market] [--seeds 1 2] [--frames 300]
        [--step 5]
"""
import argparse
import dataclasses
import logging
import os
import platform
import tempfile
from datetime import date
from pathlib import Path

import numpy as np

from rapnet_loc.geometry import invert, pose_difference
from rapnet_loc.io.source import open_source
from rapnet_loc.slam import System
from rapnet_loc.slam.config import SlamConfig
from rapnet_loc.slam.frame import Frame
from rapnet_loc.slam.relocalization import depth_conflicts_both, try_keyframe
from rapnet_loc.slam.run import pose_lookup
from rapnet_loc.synth import Challenges, generate

THRESHOLDS = (0.2, 0.25, 0.3, 0.35, 0.4)
WRONG_M, WRONG_DEG = 0.3, 15.0


def run(scene: str, seed: int, frames: int, step: int) -> list[tuple[float, bool]]:
    """(violating fraction, wrong) of every pose that passes relocalization's other checks."""
    config = SlamConfig()
    cfg = dataclasses.replace(config.tracking, reloc_max_violations=1.0)     # the depth check never refuses
    with tempfile.TemporaryDirectory() as tmp:
        bags = generate(Path(tmp), scene=scene, sequences=2, frames=frames, width=640, height=480, seed=seed,
                        challenges=Challenges(people=3), compression='none', progress=False, path='loop').bags
        with open_source(bags[0]) as source:
            system = System(source.camera, config)
            gt1 = pose_lookup(*source.ground_truth())
            results = [system.process(f) for f in source.frames()]
        first = next(r for r in results if r.T_wc is not None)
        T_gt_world = gt1(first.stamp_ns) @ invert(first.T_wc)
        out = []
        for seq, bag in enumerate(bags, 1):
            with open_source(bag) as source:
                gt = pose_lookup(*source.ground_truth())
                for i, f in enumerate(source.frames()):
                    if i % step:
                        continue
                    base = Frame.create(i, f.stamp_ns, system.extractor.extract(f.color), f.depth, system.camera,
                                        (cfg.depth_min, cfg.depth_max))
                    for kf in list(system.map.keyframes.values()):
                        S = system.map.to_first_frame(kf.map_id)
                        if S is None or (seq == 1 and abs(kf.frame.stamp_ns - f.stamp_ns) < 2e9):
                            continue
                        probe = dataclasses.replace(base, point_ids=np.full(len(base), -1, np.int64), T_cw=None)
                        if not try_keyframe(probe, kf, system.map, system.camera, cfg):
                            continue
                        agree, violate = depth_conflicts_both(kf.frame, probe, probe.T_cw @ invert(kf.T_cw),
                                                              system.camera, cfg)
                        shift, turn = pose_difference(gt(f.stamp_ns), T_gt_world @ S @ probe.T_wc)
                        out.append((violate / max(1, agree + violate), shift > WRONG_M or turn > WRONG_DEG))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--scenes', nargs='+', default=['home', 'office', 'cafe', 'market'])
    parser.add_argument('--seeds', nargs='+', type=int, default=[1, 2])
    parser.add_argument('--frames', type=int, default=300)
    parser.add_argument('--step', type=int, default=5)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    print(f'# {date.today()} on {platform.node()} ({platform.processor() or platform.machine()}, '
          f'{len(os.sched_getaffinity(0))} cores); 2 x {args.frames} frames per scene, every {args.step}th frame')
    print('| scene | seed | right poses | wrong poses | largest fraction of a right pose |')
    print('|---|---|---|---|---|')
    pooled = []
    for seed in args.seeds:
        for scene in args.scenes:
            rows = run(scene, seed, args.frames, args.step)
            pooled += rows
            right = [f for f, wrong in rows if not wrong]
            print(f'| {scene} | {seed} | {len(right)} | {len(rows) - len(right)} | '
                  f'{max(right, default=float("nan")):.3f} |', flush=True)
    fractions = np.array([f for f, _ in pooled])
    wrong = np.array([w for _, w in pooled], bool)
    if not len(pooled):
        print('no pose passed the inlier checks')
        return
    print(f'\npooled: {int((~wrong).sum())} right poses (largest fraction '
          f'{fractions[~wrong].max(initial=0.0):.3f}), {int(wrong.sum())} wrong')
    print('| threshold | right refused | wrong refused |')
    print('|---|---|---|')
    for th in THRESHOLDS:
        print(f'| {th} | {int((fractions[~wrong] > th).sum())} | {int((fractions[wrong] > th).sum())} |')


if __name__ == '__main__':
    main()
