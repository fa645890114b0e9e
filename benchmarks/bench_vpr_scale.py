"""Patch-NetVLAD query time and memory against database size, on synthetic descriptors.

For each preset and database size N, a ``patchnetvlad`` recognizer is given a fitted model (random clusters and
whitening; the backbone does not run) and N keyframes of random unit descriptors (``load_state``, as from a map
file); a query is timed from its encoding (``query`` on a backbone map: NetVLAD + IntegralVLAD + whitening, the
global shortlist by faiss, then patch matching and scoring of the shortlist). Memory is the size of the keyframe
descriptors the recognizer holds (global vectors and float16 patch descriptors). The backbone (XFeat, about 27 ms
per 640x480 image on these 2 cores, see bench_vpr.py) comes on top. Sizes whose descriptors would not fit in
``--max-gb`` are skipped and their memory extrapolated.

    python benchmarks/bench_vpr_scale.py [--sizes 1000 10000 100000] [--presets storage speed] [--queries 5]
"""
import argparse
import os
import platform
import time
from datetime import date

import numpy as np

from rapnet_loc.vpr import create_recognizer


def synthetic_state(recognizer, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """A saved state of ``recognizer`` with a random fitted model and ``n`` keyframes of random descriptors."""
    k, c, p = recognizer.model.pool.clusters, recognizer.backbone.channels, int(recognizer.conf['num_pcs'])
    unit = (lambda v: v / np.linalg.norm(v, axis=-1, keepdims=True))
    state = {'ids': np.arange(n, dtype=np.int64), 'fitted': np.array(True),
             'vectors': unit(rng.standard_normal((n, p), np.float32)).astype(np.float16),
             'centroids': rng.standard_normal((k, c), np.float32), 'assign': rng.standard_normal((k, c), np.float32),
             'wpca_weight': rng.standard_normal((p, k * c), np.float32) / np.sqrt(k * c),
             'wpca_bias': np.zeros(p, np.float32)}
    for size, (rows, cols) in zip(recognizer.patch_sizes, recognizer.grids):
        patches = np.empty((n, rows * cols, p), np.float16)
        for start in range(0, n, 1000):
            block = rng.standard_normal((min(1000, n - start), rows * cols, p), np.float32)
            patches[start:start + len(block)] = unit(block)
        state[f'patches_{size}'] = patches
    return state


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--sizes', nargs='+', type=int, default=[1000, 10000, 100000])
    parser.add_argument('--presets', nargs='+', default=['storage', 'speed'])
    parser.add_argument('--queries', type=int, default=5)
    parser.add_argument('--max-gb', type=float, default=12.0)
    parser.add_argument('--shortlist', type=int, default=None, help="keyframes re-ranked (default: the recognizer's)")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    print(f'# {date.today()} on {platform.node()} ({platform.processor() or platform.machine()}, '
          f'{len(os.sched_getaffinity(0))} cores); backbone xfeat, {args.queries} queries each')
    print('| preset | shortlist | keyframes | query ms (encode + shortlist + re-rank) | descriptor memory MB | '
          'MB per keyframe |')
    print('|---|---|---|---|---|---|')
    for preset in args.presets:
        conf = {'preset': preset} if args.shortlist is None else {'preset': preset, 'shortlist': args.shortlist}
        recognizer = create_recognizer('patchnetvlad', conf)
        shortlist = recognizer.conf['shortlist']
        per_kf = (recognizer.conf['num_pcs'] * 2 * (1 + sum(r * c for r, c in recognizer.grids)))
        query_map = rng.standard_normal((recognizer.backbone.channels, 30, 40)).astype(np.float16)
        for n in args.sizes:
            mb = n * per_kf / 2 ** 20
            if mb > args.max_gb * 1024:
                print(f'| {preset} | {shortlist} | {n} | (skipped) | {mb:.0f} (extrapolated) | '
                      f'{per_kf / 2 ** 20:.3f} |')
                continue
            recognizer.load_state(synthetic_state(recognizer, n, rng))
            recognizer.query(query_map, 10)
            start = time.perf_counter()
            for _ in range(args.queries):
                recognizer.query(query_map, 10)
            ms = 1e3 * (time.perf_counter() - start) / args.queries
            print(f'| {preset} | {shortlist} | {n} | {ms:.0f} | {mb:.0f} | {per_kf / 2 ** 20:.3f} |', flush=True)


if __name__ == '__main__':
    main()
