"""Matching accuracy on 7-Scenes redkitchen frames that RaP-Net training never saw (300-499), per extractor.

Pairs are (i, i + gap) for i = FIRST, FIRST + STEP, ... with i + gap <= LAST. Both extractors run on the
640x480 colour images (each at its own ``max_edge``; keypoints in 640x480 pixels) and are matched by mutual nearest
neighbours without a ratio test (``rapnet_loc.features.matching.match_mutual``). Ground truth: the keypoint of
frame i is lifted with its depth (the depth camera's intrinsics, ``rapnet_loc.rapnet.data.register_depth``) and
the ground-truth poses, and projected into frame i + gap with the colour intrinsics. A match is correct at t px
when the matched keypoint lies within t px of that projection. Matches without depth in frame i cannot be checked
and are left out of the accuracy (their share is printed). MMA@t is the mean over pairs of the share of correct
matches.

Two more columns separate the detector from the descriptor: repeatability@3 is the share of frame i's keypoints
(with depth, projecting inside frame i + gap) that have a keypoint of frame i + gap within 3 px of their
projection; "NN right" is the share of those repeatable keypoints whose nearest descriptor in frame i + gap is
such a keypoint (within 3 px). "Crowded" is the share of keypoints with another keypoint of the same image within
3 px: a crowded detector has more chances to land near the true position, which MMA@3 rewards (ORB's pyramid levels
often detect one corner several times).

    python benchmarks/bench_matching.py [--gaps 10 30] [--step 10] [--edges 320 640] [--variants rapnet rapnet_p]
        [--weights FILE] [--max-keypoints K] [--nms-radius R] [--no-subpixel] [--descriptor-scales 0.25 0.5]
        [--region-scale 0.25] [--orb-features 1000] [--xfeat]
"""
import argparse
import logging
import os
import platform
import time
from datetime import date
from pathlib import Path

import numpy as np
from scipy.spatial import cKDTree

from rapnet_loc.features import create_extractor
from rapnet_loc.features.base import Features
from rapnet_loc.features.matching import match_mutual, pairwise_distances
from rapnet_loc.io.sevenscenes import SevenScenesFolder
from rapnet_loc.rapnet.data import register_depth, reproject

DATA = Path(__file__).resolve().parents[1].parent / 'shared' / 'data' / '7scenes-redkitchen-seq01-dev'
THRESHOLDS = (1, 3, 5)
REPEAT_PX = 3.0


def project(xy: np.ndarray, depth_a: np.ndarray, K: np.ndarray, T_a: np.ndarray,
            T_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where keypoints (N, 2) of frame a fall in frame b, lifted with a's depth at the nearest pixel: (N, 2)
    positions and (N,) depths in b (0: no depth)."""
    col, row = (np.clip(np.rint(xy[:, k]).astype(np.int64), 0, depth_a.shape[1 - k] - 1) for k in (0, 1))
    return reproject(xy.astype(np.float64), depth_a[row, col], K, K, T_a, T_b)


def pair_errors(fa: Features, fb: Features, depth_a: np.ndarray, K: np.ndarray, T_a: np.ndarray,
                T_b: np.ndarray, ratio: float = 1.0) -> tuple[int, np.ndarray]:
    """Mutual-NN matches of a pair (with a ``ratio`` test): their count and the (M,) reprojection errors (px) of
    those with depth."""
    pairs, _ = match_mutual(fa.descriptors, fb.descriptors, fa.distance, ratio=ratio)
    uv, z = project(fa.keypoints[pairs[:, 0]], depth_a, K, T_a, T_b)
    ok = z > 0
    return len(pairs), np.linalg.norm(uv[ok] - fb.keypoints[pairs[ok, 1]], axis=1)


def repeatability(fa: Features, fb: Features, depth_a: np.ndarray, K: np.ndarray, T_a: np.ndarray,
                  T_b: np.ndarray) -> tuple[float, float]:
    """Share of ``fa``'s keypoints (with depth, seen inside b) with a keypoint of ``fb`` within ``REPEAT_PX`` of
    their projection, and the share of those whose nearest descriptor in ``fb`` is such a keypoint."""
    uv, z = project(fa.keypoints, depth_a, K, T_a, T_b)
    h, w = depth_a.shape
    seen = np.flatnonzero((z > 0) & (uv[:, 0] >= 0) & (uv[:, 0] <= w - 1) & (uv[:, 1] >= 0) & (uv[:, 1] <= h - 1))
    if len(seen) == 0 or len(fb) == 0:
        return 0.0, 0.0
    near = cKDTree(fb.keypoints).query_ball_point(uv[seen], REPEAT_PX)
    repeatable = [k for k, hits in enumerate(near) if hits]
    if not repeatable:
        return 0.0, 0.0
    nearest = pairwise_distances(fa.descriptors[seen[repeatable]], fb.descriptors, fa.distance).argmin(axis=1)
    right = np.mean([nearest[n] in near[k] for n, k in enumerate(repeatable)])
    return len(repeatable) / len(seen), float(right)


def crowded(f: Features) -> float:
    """Share of ``f``'s keypoints with another keypoint within ``REPEAT_PX``."""
    if len(f) < 2:
        return 0.0
    return float(np.mean(cKDTree(f.keypoints).query(f.keypoints, k=2)[0][:, 1] <= REPEAT_PX))


def evaluate(name: str, conf: dict, frames: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]], K: np.ndarray,
             gaps: list[int], step: int, first: int) -> list[dict]:
    """One row per gap: MMA at ``THRESHOLDS``, matches and keypoints per pair, checked share, ms per frame, the
    median error of the matches that pass a 0.7 ratio test (nearly all right: the ground truth's own error), and
    ``repeatability``, and the ``crowded`` share."""
    extractor = create_extractor(name, conf)
    features, seconds = {}, []
    for i, (color, _, _) in frames.items():
        start = time.perf_counter()
        features[i] = extractor.extract(color)
        seconds.append(time.perf_counter() - start)
    per_frame = {'keypoints': np.mean([len(f) for f in features.values()]), 'ms': 1e3 * np.median(seconds),
                 'crowded': np.mean([crowded(f) for f in features.values()])}
    rows = []
    for gap in gaps:
        pairs = [(i, i + gap) for i in range(first, max(frames) - gap + 1, step)]
        acc, matches, checked, strict, repeat = [], [], [], [], []
        for a, b in pairs:
            pair = (features[a], features[b], frames[a][1], K, frames[a][2], frames[b][2])
            n, err = pair_errors(*pair)
            acc.append([np.mean(err <= t) if len(err) else 0.0 for t in THRESHOLDS])
            matches.append(n)
            checked.append(len(err) / max(n, 1))
            strict.append(pair_errors(*pair, ratio=0.7)[1])
            repeat.append(repeatability(*pair))
        rows.append({'extractor': name, 'gap': gap, 'pairs': len(pairs), 'mma': np.mean(acc, axis=0),
                     'matches': np.mean(matches), 'checked': np.mean(checked),
                     'strict_median': np.median(np.concatenate(strict)), 'repeat': np.mean(repeat, axis=0),
                     **per_frame})
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--data', type=Path, default=DATA)
    parser.add_argument('--first', type=int, default=300)
    parser.add_argument('--last', type=int, default=499)
    parser.add_argument('--gaps', type=int, nargs='+', default=[10, 30])
    parser.add_argument('--step', type=int, default=10, help='frames between the first frames of two pairs')
    parser.add_argument('--edges', type=int, nargs='*', default=[320], help='max_edge of the RaP-Net runs (none: orb)')
    parser.add_argument('--variants', nargs='+', default=['rapnet'], choices=['rapnet', 'rapnet_p'])
    parser.add_argument('--weights', help='RaP-Net weights (default: the shipped file)')
    parser.add_argument('--orb-features', type=int, default=1000,
                        help='keypoints of the ORB baseline (and of XFeat with --xfeat)')
    parser.add_argument('--xfeat', action='store_true', help='also run the xfeat extractor (640x480)')
    parser.add_argument('--max-keypoints', type=int, help='keypoints RaP-Net keeps (default: the authors\' 520)')
    parser.add_argument('--nms-radius', type=int,
                        help='half-size of RaP-Net\'s NMS box in pixels (default: the authors\' 4, a 9x9 box)')
    parser.add_argument('--no-subpixel', dest='subpixel', action='store_false',
                        help='RaP-Net keypoints at integer pixels, as the authors report them')
    parser.add_argument('--descriptor-scales', type=float, nargs='*', default=[],
                        help='RaP-Net descriptors pooled from runs at these fractions of max_edge (none: F itself)')
    parser.add_argument('--region-scale', type=float, help='rapnet: R from the run at this fraction of max_edge')
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    folder = SevenScenesFolder(args.data, args.first, args.last)
    _, poses = folder.poses()
    wanted = {i for gap in args.gaps for a in range(args.first, args.last - gap + 1, args.step) for i in (a, a + gap)}
    frames = {f.index: (f.color, register_depth(f.depth, folder.K_depth, folder.K, f.depth.shape, 1.0), poses[n])
              for n, f in enumerate(folder) if f.index in wanted}
    runs = [('orb', {'max_keypoints': args.orb_features})] + [
        (name, {'max_edge': edge, 'subpixel': args.subpixel, 'descriptor_scales': args.descriptor_scales,
                'region_scale': args.region_scale, **({'weights': args.weights} if args.weights else {}),
                **({'max_keypoints': args.max_keypoints} if args.max_keypoints else {}),
                **({'nms_radius': args.nms_radius} if args.nms_radius is not None else {})})
        for edge in args.edges for name in args.variants] + (
        [('xfeat', {'max_keypoints': args.orb_features})] if args.xfeat else [])
    print(f'# {date.today()}, {platform.node()}, {os.cpu_count()} cores, load average '
          f'{os.getloadavg()[0]:.1f}; frames {args.first}-{args.last}, {len(frames)} images, mutual NN, no ratio test')
    print('| extractor | input | gap | pairs | MMA@1 | MMA@3 | MMA@5 | matches/pair | with depth | keypoints '
          '| ms/frame | median error, ratio 0.7 | repeatability@3 | NN right | crowded |')
    print('|' + ' --- |' * 15)
    for name, conf in runs:
        size = (f'{name.upper() if name == "orb" else "XFeat"}, 640x480, {args.orb_features} features'
                if name in ('orb', 'xfeat') else
                f'max_edge {conf["max_edge"]}{"" if args.subpixel else ", integer pixels"}'
                + (f', descriptors at {" + ".join(f"{s:g}" for s in args.descriptor_scales)}'
                   if args.descriptor_scales else '')
                + (f', R at {args.region_scale:g}' if args.region_scale and name == 'rapnet' else '')
                + (f', {args.max_keypoints} keypoints' if args.max_keypoints else '')
                + (f', NMS radius {args.nms_radius}' if args.nms_radius is not None else ''))
        for r in evaluate(name, conf, frames, folder.K, args.gaps, args.step, args.first):
            mma = ' | '.join(f'{m:.3f}' for m in r['mma'])
            print(f'| {name} | {size} | {r["gap"]} | {r["pairs"]} | {mma} | {r["matches"]:.0f} | '
                  f'{100 * r["checked"]:.0f} % | {r["keypoints"]:.0f} | {r["ms"]:.0f} | {r["strict_median"]:.1f} px | '
                  f'{r["repeat"][0]:.3f} | {r["repeat"][1]:.3f} | {r["crowded"]:.3f} |', flush=True)
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
