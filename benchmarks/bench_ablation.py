"""RaP-Net's P vs P+R ablation on synthetic sequences with walking people (``rapnet_p`` vs ``rapnet``).

1. ``rapnet_loc.synth.generate`` writes one sequence of ``--scene`` with ``--people`` walking people (every other
   challenge on) at ``--size``, with a seed that RaP-Net training did not use.
2. Keypoints: both extractors (the shipped weights or ``--weights``; ``max_keypoints`` = ``--max-keypoints``) run
   on every ``--every``-th frame; a keypoint is on a dynamic object when the ``/synth/labels`` pixel under it has
   bit 0x80. The table gives that share of all keypoints, and the share of dynamic pixels in the images for
   reference. The two extractors differ only in which detections they keep, so ``--max-keypoints`` must be below
   the number of detections for the region weight to matter.
3. Front end: ``rapnet-loc replay BAG --config OUT/NAME.yaml`` (the same extractor and tracking options, e.g.
   thresholds scaled down for a few hundred keypoints with ``--tracking``) for both, scored with the official
   OpenLORIS metrics (``rapnet_loc.eval.openloris.evaluate_file``: correct rate, ATE RMSE).

    python benchmarks/bench_ablation.py [--out out/ablation] [--scene home] [--frames 150] [--people 6] [--seed 11]
        [--max-keypoints 100] [--init-min-points 100] [--tracking JSON] [--weights FILE] [--conf JSON] [--shares-only]
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

from rapnet_loc.cli import replay
from rapnet_loc.eval.openloris import evaluate_file
from rapnet_loc.features import create_extractor
from rapnet_loc.synth import DYNAMIC, Challenges, generate
from rapnet_loc.synth.frames import bag_frames

VARIANTS = ('rapnet_p', 'rapnet')


def dynamic_shares(bag: Path, every: int, conf: dict) -> tuple[dict[str, float], float, int]:
    """Per extractor, the share of keypoints on dynamic pixels; the share of dynamic pixels; frames used."""
    extractors = {name: create_extractor(name, conf) for name in VARIANTS}
    on_dynamic, total, pixels, frames = dict.fromkeys(VARIANTS, 0), dict.fromkeys(VARIANTS, 0), [], 0
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
        frames += 1
    return {name: on_dynamic[name] / max(total[name], 1) for name in VARIANTS}, float(np.mean(pixels)), frames


def front_end(bag: Path, gt_dir: Path, out: Path, name: str, conf: dict, tracking: dict) -> dict:
    """Replay ``bag`` with extractor ``name`` (options ``conf``; front-end ``tracking`` settings) into
    ``out/name``; the sequence's OpenLORIS metrics and the seconds it took."""
    config = out / f'{name}.yaml'
    config.write_text(json.dumps({'features': {'name': name, 'conf': conf}, 'tracking': tracking}))  # JSON is YAML
    start = time.perf_counter()
    replay.run(replay.parse_args([str(bag), '--config', str(config), '--out', str(out / name)]))
    seconds = time.perf_counter() - start
    summary = evaluate_file(out / name / 'trajectory_openloris.txt', gt_dir).summary()
    return {**next(iter(summary['sequences'].values())), 'seconds': seconds}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--out', type=Path, default=Path('out/ablation'))
    parser.add_argument('--scene', default='home')
    parser.add_argument('--frames', type=int, default=150)
    parser.add_argument('--people', type=int, default=6)
    parser.add_argument('--seed', type=int, default=11)
    parser.add_argument('--size', default='320x240', help='WIDTHxHEIGHT of the synthetic images')
    parser.add_argument('--every', type=int, default=5, help='keypoint shares on every N-th frame')
    parser.add_argument('--max-keypoints', type=int, default=100, help='keypoints kept by both extractors')
    parser.add_argument('--init-min-points', type=int, default=100,
                        help='keypoints with depth the front end needs to start a map (its default: 100)')
    parser.add_argument('--tracking', type=json.loads, default={},
                        help='more front-end tracking settings, a JSON object (rapnet_loc.slam.config.TrackingConfig)')
    parser.add_argument('--weights', help='RaP-Net weights with a region head (default: the shipped file)')
    parser.add_argument('--conf', type=json.loads, default={},
                        help='more options of both extractors, a JSON object (e.g. descriptor_scales, nms_radius)')
    parser.add_argument('--shares-only', action='store_true', help='keypoint shares only, no front-end runs')
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    width, height = (int(v) for v in args.size.split('x'))
    synth = generate(args.out / 'data', args.scene, 1, args.frames, width, height, args.seed,
                     Challenges(people=args.people), compression='lz4', progress=False)
    bag = synth.bags[0]
    conf = {**args.conf, 'max_keypoints': args.max_keypoints, **({'weights': args.weights} if args.weights else {})}
    shares, pixel_share, frames = dynamic_shares(bag, args.every, conf)
    print(f'# {date.today()}, {platform.node()}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; '
          f'{bag.name}: {args.frames} frames at {args.size}, {args.people} people, seed {args.seed}, '
          f'{args.max_keypoints} keypoints' + (f', options {json.dumps(args.conf)}' if args.conf else ''))
    print(f'dynamic pixels: {100 * pixel_share:.1f} % of the image ({frames} frames)')
    if args.shares_only:
        print(', '.join(f'{name}: {100 * share:.1f} % of the keypoints on people' for name, share in shares.items()))
        return 0
    print('| extractor | keypoints on people | correct rate | ATE RMSE | tracked poses | replay s |')
    print('| --- | --- | --- | --- | --- | --- |')
    tracking = {'init_min_points': args.init_min_points, **args.tracking}
    for name in VARIANTS:
        m = front_end(bag, synth.gt_path.parent, args.out, name, conf, tracking)
        print(f'| {name} | {100 * shares[name]:.1f} % | {m["correct_rate"]:.3f} | {100 * m["ate_rmse"]:.1f} cm | '
              f'{m["poses"]} | {m["seconds"]:.0f} |', flush=True)
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
