"""Place-recognition recall on 7-Scenes redkitchen (../shared/data): ``bow``, ``netvlad`` and ``patchnetvlad``.

Database: frames 0-349, every 5th (70 keyframes); queries: frames 350-499 (``--split test``, the acceptance split).
Settings are chosen on three tuning folds of frames 0-349, by the mean of their recall@1: ``tune`` (database
0-174 every 5th, queries 175-349), ``tune-reverse`` (database 175-349, queries 0-174) and ``tune-late`` (database
0-229, queries 230-349); ``--split tune-all`` runs the three and prints their means.
A retrieved keyframe is correct when its ground-truth camera centre lies within 0.5 m of the query's and
its viewing direction within 30 deg; recall@N is the share of queries with a correct keyframe among the first N,
over the queries that have at least one correct keyframe in the database (the usual VPR convention). Each
recognizer indexes the database (``add``), is fitted on it (``fit``, as ``build-map`` does), and ranks every
query; query time is ``describe`` + ``query`` per frame (backbone included), bytes per keyframe the size of its
saved state over the number of keyframes. Backbone maps are computed once per backbone and shared by its
recognizers (``describe`` is the backbone); the clusters and whitening are fitted on the database frames only.

    python benchmarks/bench_vpr.py [--split test|tune|tune-reverse|tune-late|tune-all] [--db-step 5]
        [--backbones xfeat rapnet vgg16] [--presets storage-ransac storage speed performance] [--shortlists 5 100 ...]
        [--performance-shortlist N] [--netvlad-pcs 128 256 ...] [--no-bow]
"""
import argparse
import io
import logging
import os
import platform
import time
from datetime import date

import numpy as np

from bench_matching import DATA
from rapnet_loc.features import create_extractor
from rapnet_loc.io.sevenscenes import SevenScenesFolder
from rapnet_loc.vpr import View, create_recognizer

DB_STEP = 5
SPLITS = {'test': ((0, 349), (350, 499)), 'tune': ((0, 174), (175, 349)),      # (database, queries) first..last
          'tune-reverse': ((175, 349), (0, 174)), 'tune-late': ((0, 229), (230, 349))}
TUNE_FOLDS = ('tune', 'tune-reverse', 'tune-late')
PERFORMANCE_SHORTLIST = 5   # the performance preset's RANSAC re-ranking costs ~0.4 s a keyframe on 2 CPU cores
MAX_DISTANCE, MAX_ANGLE = 0.5, 30.0
RECALL_AT = (1, 5, 10)


def correct_matrix(poses_q: np.ndarray, poses_db: np.ndarray) -> np.ndarray:
    """(Q, D) bool: database pose within MAX_DISTANCE and MAX_ANGLE of the query pose (camera-to-world 4x4s)."""
    dist = np.linalg.norm(poses_q[:, None, :3, 3] - poses_db[None, :, :3, 3], axis=2)
    rel = np.einsum('qji,djk->qdik', poses_q[:, :3, :3], poses_db[:, :3, :3])
    angle = np.degrees(np.arccos(np.clip((np.trace(rel, axis1=2, axis2=3) - 1) / 2, -1, 1)))
    return (dist <= MAX_DISTANCE) & (angle <= MAX_ANGLE)


def state_bytes(recognizer) -> int:
    """Bytes of the recognizer's saved state (uncompressed .npz)."""
    buffer = io.BytesIO()
    np.savez(buffer, **recognizer.state())
    return buffer.tell()


def evaluate(name: str, conf: dict, db: dict, queries: dict, correct: np.ndarray, describe_ms: float) -> dict:
    """Recall@N, ms per query and bytes per keyframe of one recognizer; ``db``/``queries`` map frame index to
    the recognizer's description (``describe``), ``describe_ms`` is its mean time per frame."""
    recognizer = create_recognizer(name, conf)
    db_ids = sorted(db)
    for row, index in enumerate(db_ids):
        recognizer.add(row, db[index])
    start = time.perf_counter()
    recognizer.fit()
    fit_s = time.perf_counter() - start
    valid = correct.any(axis=1)
    hits = np.zeros((len(RECALL_AT),))
    times = []
    for q, index in enumerate(sorted(queries)):
        start = time.perf_counter()
        ranking = recognizer.query(queries[index], max(RECALL_AT))
        times.append(time.perf_counter() - start)
        if valid[q]:
            good = correct[q, ranking.ids]
            hits += [good[:n].any() for n in RECALL_AT]
    recall = hits / valid.sum()
    return {'recall': recall, 'query_ms': describe_ms + 1e3 * float(np.mean(times)), 'fit_s': fit_s,
            'bytes': state_bytes(recognizer) / len(db_ids), 'valid': int(valid.sum())}


def fold_rows(split: str, images: dict, pose: dict, args, cache: dict) -> dict[str, np.ndarray]:
    """Print one split's table; return each row's recall@(1, 5, 10) by label. ``cache`` keeps each backbone's
    maps and the ORB descriptions of the frames already described (shared by the folds)."""
    (db_first, db_last), (q_first, q_last) = SPLITS[split]
    db_idx = [i for i in range(db_first, db_last + 1) if i % args.db_step == 0]
    q_idx = list(range(q_first, q_last + 1))
    correct = correct_matrix(np.array([pose[i] for i in q_idx]), np.array([pose[i] for i in db_idx]))
    print(f'\n# {date.today()} on {platform.node()} ({platform.processor() or platform.machine()}, '
          f'{len(os.sched_getaffinity(0))} cores), split {split}: database {len(db_idx)} frames '
          f'({db_first}-{db_last} every {args.db_step}), queries {q_first}-{q_last}, '
          f'{int(correct.any(axis=1).sum())} with a correct keyframe (<= {MAX_DISTANCE} m, <= {MAX_ANGLE:g} deg)')
    print('| recognizer | backbone | R@1 | R@5 | R@10 | query ms | fit s | KB per keyframe |')
    print('|---|---|---|---|---|---|---|---|')
    recalls = {}

    def row(name: str, backbone: str, r: dict) -> None:
        recalls[f'{name} | {backbone}'] = r['recall']
        print(f'| {name} | {backbone} | {r["recall"][0]:.3f} | {r["recall"][1]:.3f} | {r["recall"][2]:.3f} | '
              f'{r["query_ms"]:.1f} | {r["fit_s"]:.1f} | {r["bytes"] / 1024:.1f} |', flush=True)

    def described(key: str, describe) -> tuple[dict, dict, float]:
        """Database and query descriptions of ``key`` (cached) and the mean ms per frame of describing one."""
        done, spent = cache.setdefault(key, ({}, []))
        for i in db_idx + q_idx:
            if i not in done:
                start = time.perf_counter()
                done[i] = describe(images[i])
                spent.append(time.perf_counter() - start)
        return {i: done[i] for i in db_idx}, {i: done[i] for i in q_idx}, 1e3 * float(np.mean(spent))

    if args.bow:
        orb, bow = create_extractor('orb'), create_recognizer('bow')
        db, queries, ms = described('bow', lambda image: bow.describe(View(orb.extract(image))))
        row('bow', 'orb', evaluate('bow', {}, db, queries, correct, ms))
    for backbone in args.backbones:
        probe = create_recognizer('netvlad', {'backbone': backbone})
        db, queries, ms = described(backbone, lambda image: probe.describe(View(None, image)))
        for pcs in args.netvlad_pcs or [None]:
            conf = {'backbone': backbone} if pcs is None else {'backbone': backbone, 'num_pcs': pcs}
            row('netvlad' if pcs is None else f'netvlad ({pcs} dimensions)', backbone,
                evaluate('netvlad', conf, db, queries, correct, ms))
        for preset in args.presets:
            shortlists = [args.performance_shortlist] if preset == 'performance' else args.shortlists or [None]
            for shortlist in shortlists:
                conf = {'backbone': backbone, 'preset': preset}
                label = f'patchnetvlad {preset}'
                if shortlist is not None:
                    conf['shortlist'] = shortlist
                    label += f' (shortlist {shortlist})'
                row(label, backbone, evaluate('patchnetvlad', conf, db, queries, correct, ms))
    return recalls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--backbones', nargs='+', default=['xfeat', 'rapnet', 'vgg16'])
    parser.add_argument('--presets', nargs='*', default=['storage-ransac', 'storage', 'speed', 'performance'])
    parser.add_argument('--performance-shortlist', type=int, default=PERFORMANCE_SHORTLIST,
                        help='shortlist of the performance preset (its RANSAC re-ranking of 2826 patches of 4096 '
                             'dimensions costs ~0.4 s a keyframe on 2 CPU cores; the preset re-ranks 100)')
    parser.add_argument('--shortlists', nargs='+', type=int, default=[],
                        help="global shortlist sizes to re-rank with the other presets (default: the preset's, 100)")
    parser.add_argument('--netvlad-pcs', nargs='+', type=int, default=[],
                        help="whitened dimensions of the netvlad rows (default: the recognizer's)")
    parser.add_argument('--db-step', type=int, default=DB_STEP, help='database keyframe step (default 5)')
    parser.add_argument('--split', choices=[*SPLITS, 'tune-all'], default='test',
                        help='test: the acceptance split; the tune folds (settings are chosen on their mean '
                             'recall@1); tune-all: the three folds and their means')
    parser.add_argument('--no-bow', dest='bow', action='store_false', help='leave out the bow row')
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    splits = TUNE_FOLDS if args.split == 'tune-all' else (args.split,)
    last = max(q for s in splits for q in (SPLITS[s][0][1], SPLITS[s][1][1]))
    folder = SevenScenesFolder(DATA, 0, last)
    _, poses = folder.poses()
    images = {frame.index: frame.color for frame in folder}
    pose = dict(zip(folder.indices, poses))
    cache: dict = {}
    folds = [fold_rows(split, images, pose, args, cache) for split in splits]
    if len(folds) > 1:
        print(f'\n# mean over {", ".join(splits)}')
        print('| recognizer | backbone | R@1 | R@5 | R@10 |')
        print('|---|---|---|---|---|')
        for label in folds[0]:
            mean = np.mean([fold[label] for fold in folds], axis=0)
            print(f'| {label} | {mean[0]:.3f} | {mean[1]:.3f} | {mean[2]:.3f} |')


if __name__ == '__main__':
    main()
