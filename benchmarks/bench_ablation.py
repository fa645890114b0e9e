"""P vs P+R ablation on synthetic sequences with walking people: an extractor against its region-weighted variant
(``--variants``: ``rapnet_p rapnet`` by default; ``xfeat xfeat_r`` and ``orb orb_r``, ``rapnet_loc.features.region``).

1. ``rapnet_loc.synth.generate`` writes one sequence of ``--scene`` with ``--people`` walking people (every other
   challenge on) at ``--size`` for each of ``--seeds`` (seeds that RaP-Net training did not use).
2. Keypoints: both extractors (the shipped weights or ``--weights`` for RaP-Net, ``--region-weights`` for the
   ``_r`` variants' region head; ``max_keypoints`` = ``--max-keypoints``) run
   on every ``--every``-th frame; a keypoint is on a dynamic object when the ``/synth/labels`` pixel under it has
   bit 0x80. The table gives that share of all keypoints, and the share of dynamic pixels in the images for
   reference. The two extractors differ only in which detections they keep, so ``--max-keypoints`` must be below
   the number of detections for the region weight to matter.
3. Front end: ``rapnet-loc replay BAG --config OUT/NAME.yaml`` (the same extractor and tracking options, e.g.
   thresholds scaled down for a few hundred keypoints with ``--tracking``) for both, scored with the official
   OpenLORIS metrics (``rapnet_loc.eval.openloris.evaluate_file``: correct rate, ATE RMSE).
4. With several seeds, a row per sequence and a pooled row per extractor: the share over all the sequences'
   keypoints, the mean correct rate, the mean ATE RMSE of the sequences that have one, and all tracked poses.

The defaults are the run that issue 4 reports: the demo's first sequence (scene ``home``, seed 0, 300 frames at
640x480, 3 people, every challenge on), which ORB with the front end's defaults follows end to end (300/300 frames,
correct rate 1.000), and 1000 keypoints, the front end's default count. Sequences the front end cannot follow
say little about P against P + R: where tracking is lost early (a person filling the view, a bare wall; e.g. seeds
11 to 14, see BENCHMARKS.md), the short, straight path left over leaves the official alignment's rotation about
it undetermined, and the correct rate is 0 or a matter of luck.

    python benchmarks/bench_ablation.py [--out out/ablation] [--scene home] [--size 640x480] [--frames 300]
        [--people 3] [--seeds 0 [11 ...]] [--max-keypoints 1000] [--init-min-points 100] [--tracking JSON]
        [--weights FILE] [--conf JSON] [--shares-only] [--variants P PR] [--region-weights FILE]
"""
import argparse
import json
import logging
import os
import platform
import time
from datetime import date
from pathlib import Path

import numpy as np

from rapnet_loc.eval.openloris import evaluate_file
from rapnet_loc.features import create_extractor
from rapnet_loc.io.source import open_source
from rapnet_loc.slam.config import SlamConfig
from rapnet_loc.slam.run import replay
from rapnet_loc.synth import DYNAMIC, Challenges, generate
from rapnet_loc.synth.frames import bag_frames


def dynamic_counts(bag: Path, every: int, confs: dict[str, dict]) -> tuple[dict[str, tuple[int, int]], float]:
    """Per extractor (name -> options), (keypoints on dynamic pixels, all keypoints); the share of dynamic
    pixels."""
    extractors = {name: create_extractor(name, conf) for name, conf in confs.items()}
    on_dynamic, total, pixels = dict.fromkeys(confs, 0), dict.fromkeys(confs, 0), []
    _, items = bag_frames(bag)
    for n, item in enumerate(items):
        if n % every:
            continue
        dynamic = (item.labels & DYNAMIC) > 0
        pixels.append(dynamic.mean())
        for name, extractor in extractors.items():
            xy = np.rint(extractor.extract(item.frame.color).keypoints).astype(np.int64)
            on_dynamic[name] += int(dynamic[xy[:, 1], xy[:, 0]].sum())
            total[name] += len(xy)
    return {name: (on_dynamic[name], total[name]) for name in confs}, float(np.mean(pixels))


def front_end(bag: Path, gt_dir: Path, out: Path, name: str, conf: dict, tracking: dict) -> dict:
    """Replay ``bag`` with extractor ``name`` (options ``conf``; front-end ``tracking`` settings) into
    ``out/name``; the sequence's OpenLORIS metrics and the seconds it took."""
    config = SlamConfig.from_dict({'features': {'name': name, 'conf': conf}, 'tracking': tracking})
    start = time.perf_counter()
    with open_source(bag) as source:
        replay(source, config, out / name)
    seconds = time.perf_counter() - start
    summary = evaluate_file(out / name / 'trajectory_openloris.txt', gt_dir).summary()
    return {**next(iter(summary['sequences'].values())), 'seconds': seconds}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--out', type=Path, default=Path('out/ablation'))
    parser.add_argument('--scene', default='home')
    parser.add_argument('--frames', type=int, default=300)
    parser.add_argument('--people', type=int, default=3)
    parser.add_argument('--seeds', type=int, nargs='+', default=[0])
    parser.add_argument('--size', default='640x480', help='WIDTHxHEIGHT of the synthetic images')
    parser.add_argument('--every', type=int, default=5, help='keypoint shares on every N-th frame')
    parser.add_argument('--max-keypoints', type=int, default=1000, help='keypoints kept by both extractors')
    parser.add_argument('--init-min-points', type=int, default=100,
                        help='keypoints with depth the front end needs to start a map (its default: 100)')
    parser.add_argument('--tracking', type=json.loads, default={},
                        help='more front-end tracking settings, a JSON object (rapnet_loc.slam.config.TrackingConfig)')
    parser.add_argument('--weights', help='RaP-Net weights with a region head (default: the shipped file)')
    parser.add_argument('--conf', type=json.loads, default={},
                        help='more options of both extractors, a JSON object (e.g. descriptor_scales, nms_radius)')
    parser.add_argument('--shares-only', action='store_true', help='keypoint shares only, no front-end runs')
    parser.add_argument('--variants', nargs=2, default=['rapnet_p', 'rapnet'], metavar=('P', 'PR'),
                        help='the extractor and its region-weighted variant')
    parser.add_argument('--region-weights', help='region head of the _r variants (default: the shipped file)')
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    width, height = (int(v) for v in args.size.split('x'))
    confs = {name: {**args.conf, 'max_keypoints': args.max_keypoints,
                    **({'weights': args.weights} if args.weights and name.startswith('rapnet') else {}),
                    **({'region_weights': args.region_weights} if args.region_weights and name.endswith('_r') else {})}
             for name in args.variants}
    tracking = {'init_min_points': args.init_min_points, **args.tracking}
    print(f'# {date.today()}, {platform.node()}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; '
          f'{args.scene}: {args.frames} frames at {args.size}, {args.people} people, seeds {args.seeds}, '
          f'{args.max_keypoints} keypoints' + (f', options {json.dumps(args.conf)}' if args.conf else ''))
    print('| seed | dynamic pixels | extractor | keypoints on people | correct rate | ATE RMSE | tracked poses | '
          'replay s |')
    print('| --- | --- | --- | --- | --- | --- | --- | --- |')
    pooled = {name: [] for name in args.variants}
    for seed in args.seeds:
        out = args.out / f'seed{seed}' if len(args.seeds) > 1 else args.out
        synth = generate(out / 'data', args.scene, 1, args.frames, width, height, seed,
                         Challenges(people=args.people), compression='lz4', progress=False)
        counts, pixel_share = dynamic_counts(synth.bags[0], args.every, confs)
        for name in args.variants:
            m = {} if args.shares_only else front_end(synth.bags[0], synth.gt_path.parent, out, name, confs[name],
                                                      tracking)
            pooled[name].append((counts[name], m))
            print(f'| {seed} | {100 * pixel_share:.1f} % | {name} | {row(counts[name], m)}', flush=True)
    if len(args.seeds) > 1:
        for name, runs in pooled.items():
            print(f'| all | | **{name}** | {row(*pool(runs))}')
    return 0


def pool(runs: list[tuple[tuple[int, int], dict]]) -> tuple[tuple[int, int], dict]:
    """Keypoint counts summed over the sequences' ``runs`` (counts, metrics); metrics averaged (ATE RMSE over the
    sequences that have one), tracked poses summed."""
    counts = (sum(c[0] for c, _ in runs), sum(c[1] for c, _ in runs))
    metrics = [m for _, m in runs if m]
    if not metrics:
        return counts, {}
    ate = [m['ate_rmse'] for m in metrics if m['ate_rmse'] is not None]
    return counts, {'correct_rate': float(np.mean([m['correct_rate'] for m in metrics])),
                    'ate_rmse': float(np.mean(ate)) if ate else None,
                    'poses': sum(m['poses'] for m in metrics),
                    'seconds': float(np.mean([m['seconds'] for m in metrics]))}


def row(counts: tuple[int, int], m: dict) -> str:
    """The table cells after the extractor's: keypoint share from ``counts`` and the front end's metrics ``m``
    (empty with ``--shares-only``)."""
    share = f'{100 * counts[0] / max(counts[1], 1):.1f} % |'
    if not m:
        return share + ' | | | |'
    ate = 'none' if m['ate_rmse'] is None else f'{100 * m["ate_rmse"]:.1f} cm'
    return share + f' {m["correct_rate"]:.3f} | {ate} | {m["poses"]} | {m["seconds"]:.0f} |'


if __name__ == '__main__':
    raise SystemExit(main())
