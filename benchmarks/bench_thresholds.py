"""Descriptor-distance thresholds for float (L2) descriptors, quantile-matched to ORB-SLAM2's Hamming ones.

The RGB-D tracker accepts a match at ``strict_distance`` where only descriptors decide (relocalization,
reference-keyframe tracking, triangulation; ORB-SLAM2's TH_LOW = 50 bits of 256) and at ``max_distance`` in
searches by projection (TH_HIGH = 100 bits). For L2-normalised float descriptors (RaP-Net: distances in [0, 2])
those values accept every match. This script picks L2 values on validation frames of 7-Scenes redkitchen
(../shared/data; frames 0-199 by default, disjoint from the test frames 300-499 of bench_matching.py).

Pairs are (i, i + gap) for i = FIRST, FIRST + STEP, ... with i + gap <= LAST. Each extractor runs once per frame on
the 640x480 colour image, and each pair is matched by mutual nearest neighbours with no distance threshold and no
ratio test (``rapnet_loc.features.matching.match_mutual``). As in bench_matching.py, the keypoint of frame i is
lifted with its depth and the ground-truth poses and projected into frame i + gap: a match is correct when the
matched keypoint lies within 3 px of that projection and wrong beyond 10 px; matches in between (ambiguous) and
matches without depth in frame i are left out.

Calibration of ``strict_distance``: ORB's recall at a threshold t is the share of its correct matches with distance
<= t. For t = 50 the L2 threshold of a float extractor is the quantile of its correct-match distances at the same
recall, so that it keeps the same share of its correct matches as ORB-SLAM2's operating point; the share of wrong
matches each threshold lets through shows how much it still rejects.

Calibration of ``max_distance``: TH_HIGH = 100 keeps every correct mutual-NN match (so recall cannot place it); what
it does is reject descriptors no closer than chance. "Unrelated" distances are those of random keypoint pairs
across the two frames of a pair (``UNRELATED_PER_PAIR`` per pair, nearly all of different points); the L2 threshold
is the quantile of the float extractor's unrelated distances at the share of ORB's unrelated distances below 100.
The suggestion pools both gaps.

    python benchmarks/bench_thresholds.py [--first 0] [--last 199] [--step 10] [--gaps 10 30]
        [--variants orb rapnet rapnet_p]
"""
import argparse
import logging
import os
import platform
import sys
from datetime import date
from pathlib import Path

import numpy as np

from bench_matching import DATA, project
from rapnet_loc.features import Features, create_extractor
from rapnet_loc.features.matching import match_mutual, row_distances
from rapnet_loc.io.sevenscenes import SevenScenesFolder
from rapnet_loc.rapnet.data import register_depth

VARIANTS = {'orb': {}, 'rapnet': {'max_edge': 320}, 'rapnet_p': {'max_edge': 320}, 'xfeat': {}}
CORRECT_PX, WRONG_PX = 3.0, 10.0
ORB_THRESHOLDS = (50, 100)  # ORB-SLAM2's TH_LOW and TH_HIGH, Hamming bits
QUANTILES = (50, 75, 90, 95, 99)
UNRELATED_PER_PAIR = 20_000


def labelled_distances(features: dict[int, Features], frames: dict, K: np.ndarray,
                       pairs: list[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
    """Descriptor distances of the mutual-NN matches of ``pairs`` that ground truth calls correct, (C,), and
    wrong, (W,), pooled over the pairs. ``frames`` maps an index to (colour, depth (H, W), T_wc (4, 4))."""
    correct, wrong = [], []
    for a, b in pairs:
        fa, fb = features[a], features[b]
        idx, dist = match_mutual(fa.descriptors, fb.descriptors, fa.distance, ratio=1.0)
        uv, z = project(fa.keypoints[idx[:, 0]], frames[a][1], K, frames[a][2], frames[b][2])
        err = np.where(z > 0, np.linalg.norm(uv - fb.keypoints[idx[:, 1]], axis=1), np.nan)
        correct.append(dist[err <= CORRECT_PX])
        wrong.append(dist[err > WRONG_PX])
    return np.concatenate(correct), np.concatenate(wrong)


def unrelated_distances(features: dict[int, Features], pairs: list[tuple[int, int]], seed: int = 0) -> np.ndarray:
    """(U,) descriptor distances of ``UNRELATED_PER_PAIR`` random keypoint pairs (one keypoint of each frame) per
    frame pair, pooled."""
    rng = np.random.default_rng(seed)
    out = []
    for a, b in pairs:
        fa, fb = features[a], features[b]
        i, j = rng.integers(len(fa), size=UNRELATED_PER_PAIR), rng.integers(len(fb), size=UNRELATED_PER_PAIR)
        out.append(row_distances(fa.descriptors[i], fb.descriptors[j], fa.distance))
    return np.concatenate(out)


def share(dist: np.ndarray, threshold: float) -> float:
    """Share of the distances (N,) at most ``threshold`` (NaN when N = 0)."""
    return float(np.mean(dist <= threshold)) if len(dist) else float('nan')


def quantiles(dist: np.ndarray) -> np.ndarray:
    """(len(QUANTILES),) percentiles of the distances (N,) (NaN when N = 0)."""
    return np.percentile(dist, QUANTILES) if len(dist) else np.full(len(QUANTILES), np.nan)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--data', type=Path, default=DATA)
    parser.add_argument('--first', type=int, default=0)
    parser.add_argument('--last', type=int, default=199)
    parser.add_argument('--gaps', type=int, nargs='+', default=[10, 30])
    parser.add_argument('--step', type=int, default=10, help='frames between the first frames of two pairs')
    parser.add_argument('--variants', nargs='+', default=['orb', 'rapnet'], choices=list(VARIANTS),
                        help='extractors (orb, the reference, is required; RaP-Net ones at max_edge 320)')
    args = parser.parse_args()
    if 'orb' not in args.variants:
        parser.error('--variants must include orb, the reference of the calibration')
    if not args.data.is_dir():
        print(f'skipped: {args.data} not found')
        return 0
    logging.basicConfig(level=logging.WARNING)
    pairs = {gap: [(a, a + gap) for a in range(args.first, args.last - gap + 1, args.step)] for gap in args.gaps}
    if not all(pairs.values()):
        parser.error(f'every gap needs at least one pair in frames {args.first}-{args.last}')
    wanted = {i for gap_pairs in pairs.values() for pair in gap_pairs for i in pair}
    folder = SevenScenesFolder(args.data, args.first, args.last)
    _, poses = folder.poses()
    frames = {f.index: (f.color, register_depth(f.depth, folder.K_depth, folder.K, f.depth.shape, 1.0), poses[n])
              for n, f in enumerate(folder) if f.index in wanted}
    print(f'# {date.today()}, {platform.node()}, {platform.processor() or platform.machine()}, {os.cpu_count()} cores; '
          f'7-Scenes redkitchen frames {args.first}-{args.last} ({len(frames)} images), gaps '
          f'{", ".join(map(str, args.gaps))}, step {args.step}')
    print(f'# command: {sys.executable} {" ".join(sys.argv)}')
    print(f'# mutual NN, no ratio test, no distance threshold; correct <= {CORRECT_PX:g} px, wrong > {WRONG_PX:g} px')

    # dist[name][group] = (correct (C,), wrong (W,), unrelated (U,)) distances; group is a gap or 'all' (pooled)
    dist, metric = {}, {}
    for name in args.variants:
        extractor = create_extractor(name, VARIANTS[name])
        features = {i: extractor.extract(color) for i, (color, _, _) in frames.items()}
        metric[name] = next(iter(features.values())).distance
        dist[name] = {gap: (*labelled_distances(features, frames, folder.K, pairs[gap]),
                            unrelated_distances(features, pairs[gap])) for gap in args.gaps}
        dist[name]['all'] = tuple(np.concatenate(d) for d in zip(*dist[name].values()))
    groups = [*args.gaps, 'all']

    print('\n| extractor | metric | gap | correct | wrong | ' + ' | '.join(
        f'{kind} p{q}' for kind in ('correct', 'wrong') for q in QUANTILES) + ' | unrelated p1 | unrelated p5 |')
    print('|' + ' --- |' * (7 + 2 * len(QUANTILES)))
    for name in args.variants:
        fmt = '.0f' if metric[name] == 'hamming' else '.3f'
        for group in groups:
            correct, wrong, unrelated = dist[name][group]
            cells = ' | '.join(f'{v:{fmt}}' for d in (correct, wrong) for v in quantiles(d))
            cells += ' | ' + ' | '.join(f'{v:{fmt}}' for v in np.percentile(unrelated, (1, 5)))
            print(f'| {name} | {metric[name]} | {group} | {len(correct)} | {len(wrong)} | {cells} |')

    print('\n| extractor | gap | threshold | correct kept | wrong let through | unrelated let through |')
    print('|' + ' --- |' * 6)
    low, high = ORB_THRESHOLDS
    suggested = {}  # name -> (strict, max) L2 thresholds, both gaps pooled
    for group in groups:
        orb_correct, orb_wrong, orb_unrelated = dist['orb'][group]
        rows = [('orb', f'{t} bits (ORB-SLAM2)', t) for t in ORB_THRESHOLDS]
        for name in args.variants:
            if metric[name] != 'l2':
                continue
            correct, _, unrelated = dist[name][group]
            strict = float(np.quantile(correct, share(orb_correct, low)))
            high_l2 = float(np.quantile(unrelated, share(orb_unrelated, high)))
            if group == 'all':
                suggested[name] = strict, high_l2
            rows += [(name, f'{strict:.3f} (ORB {low}: same correct kept)', strict),
                     (name, f'{high_l2:.3f} (ORB {high}: same unrelated let through)', high_l2),
                     *((name, f'{t} (old, Hamming value)', t) for t in ORB_THRESHOLDS)]
        for name, label, t in rows:
            cells = ' | '.join(f'{share(d, t):.3f}' for d in dist[name][group])
            print(f'| {name} | {group} | {label} | {cells} |')

    print(f'\n# load average during the run: {os.getloadavg()[0]:.2f}')
    for name, (strict, high_l2) in suggested.items():
        print(f'{name} {VARIANTS[name]}: suggested l2 strict_distance = {strict:.2f} (keeps the share of correct '
              f'matches ORB keeps at {low}), max_distance = {high_l2:.2f} (lets through the share of unrelated '
              f'pairs ORB lets through at {high}); frames {args.first}-{args.last}, gaps '
              f'{", ".join(map(str, args.gaps))}, pooled')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
