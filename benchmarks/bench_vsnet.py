"""VS-Net landmark-voting localization (``rapnet-loc train-vsnet``, then ``localize --estimator vsnet``): train on
the frames of one part of a scene, localize every query frame on its own from its colour image, and compare with
the ground-truth poses (no alignment: the model is in their frame).

``--data 7scenes`` (default): 7-Scenes redkitchen (../shared/data), training frames 0-349, queries 350-499 (the
dev split of issue P7). ``--data synthetic``: a synthetic scene generated here (``rapnet-loc synth``; by default
home, 2 sequences of 600 frames at 640x480 on ``loop`` paths, no people and no other challenge), trained on
sequence 1, queries every frame of sequence 2. Sequence 2 starts on sequence 1's path and drives laps of its own;
600 frames (20 s) make sequence 1 close its lap, so that every frame of sequence 2 sees part of the surface
sequence 1 mapped. With 300 frames a quarter of sequence 2 saw none of it (BENCHMARKS.md, session 23). ``--model``
skips training. Several ``--steps`` values train once, in turn (each resumes the previous one: the same batches and
draws as a run of that length from the start), and localize the queries with the model of each.
``--voting min_segment=3,10 reprojection_px=6`` also localizes with each of those values alone, on top of the
defaults or of ``--voting-base KEY=V ...``.

Synthetic runs first print how much of the surface each query frame sees was mapped by the training frames.
Prints the training time and final losses, the share of queries localized, the median and p90 errors of the
localized ones, the share of all queries within 5 cm / 5 deg, and the time per frame (network, voting, PnP).

    python benchmarks/bench_vsnet.py [--data 7scenes|synthetic] [--steps 4500 [6000 ...]] [--backbone xfeat]
        [--image-width 320] [--model MODEL] [--voting KEY=V1,V2 ...] [--voting-base KEY=V ...] [--keep DIR]
        [--scene home] [--frames 300] [--path loop|explore] [--challenges ...]
"""
import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from bench_localize import DATA, print_errors
from rapnet_loc.io.source import open_source
from rapnet_loc.landmarks import Scene, create_estimator
from rapnet_loc.landmarks.network import VSNet
from rapnet_loc.landmarks.surface import build_landmarks
from rapnet_loc.landmarks.train import VSNetTrainConfig, targets, train_vsnet, training_images
from rapnet_loc.landmarks.voting import VotingConfig
from rapnet_loc.slam.run import localize_frames
from rapnet_loc.synth import Challenges, generate
from rapnet_loc.synth.frames import write_training_folder
from rapnet_loc.synth.path import PATH_STYLES

CHALLENGES = ('illumination', 'repetitive', 'featureless', 'motion_blur', 'moved_furniture')


def synthetic_folder(out: Path, args: argparse.Namespace) -> Path:
    """A generated scene's frames (sequence 1 then 2, one world frame) in a 7-Scenes-style folder."""
    flags = {name: name in args.challenges for name in CHALLENGES}
    summary = generate(out / 'bags', scene=args.scene, sequences=2, frames=args.frames, width=640, height=480,
                       seed=args.seed, challenges=Challenges(people=args.people, **flags), compression='none',
                       progress=False, path=args.path)
    write_training_folder(summary.bags, out / 'frames', progress=False)
    return out / 'frames'


def coverage(folder: Path, train_frames: str, query_frames: str) -> None:
    """Print how much of what each query frame sees was mapped: the share of its pixels with depth whose surface
    belongs to a landmark patch of the training frames (the targets ``train-vsnet`` renders), every 3rd query."""
    cfg = VSNetTrainConfig(str(folder), '', frames=train_frames)
    landmarks = build_landmarks(training_images(cfg, False), cfg.voxel, cfg.seed_resolution, cfg.min_points,
                                cfg.depth_max)
    shares = []
    for image in training_images(VSNetTrainConfig(str(folder), '', frames=query_frames, stride=3), False):
        labels, _ = targets(landmarks, image, VSNet.stride)
        seen = image.depth[::VSNet.stride, ::VSNet.stride][:labels.shape[0], :labels.shape[1]] > 0
        shares.append((labels > 0).sum() / max(seen.sum(), 1))
    shares = np.array(shares)
    print(f'  queries\' view of the mapped surface: median {np.median(shares):.0%}, 10th percentile '
          f'{np.percentile(shares, 10):.0%}; {np.mean(shares < 0.2):.0%} of the queries see under 20 % of it')


def voting_grid(items: list[str], base: list[str]) -> list[dict]:
    """``['KEY=V1,V2', ...]`` -> the estimator options to try: ``base`` (``['KEY=V', ...]``, on top of the defaults),
    then each value of each key alone on top of ``base``."""
    def parse(item: str) -> tuple[str, list]:
        key, _, values = item.partition('=')
        if key not in VotingConfig.__dataclass_fields__ or not values:
            raise SystemExit(f'--voting takes KEY=V1,V2,... with KEY one of '
                             f'{", ".join(VotingConfig.__dataclass_fields__)}, got {item!r}')
        kind = type(getattr(VotingConfig, key))
        return key, [value.lower() in ('true', '1') if kind is bool else kind(value) for value in values.split(',')]

    start = dict(map(parse, base))
    if multiple := [key for key, values in start.items() if len(values) != 1]:
        raise SystemExit(f'--voting-base takes one value per key: {", ".join(multiple)}')
    start = {key: values[0] for key, values in start.items()}
    return [start] + [{**start, key: value} for key, values in map(parse, items) for value in values]


def evaluate(folder: Path, query_frames: str, model: str | Path, grid: list[dict]) -> None:
    """Localize every query frame on its own with ``model`` (once per set of voting options in ``grid``) and print
    the errors against the ground truth."""
    for options in grid:
        if options:
            print(f'  voting options {options}:')
        with open_source(folder, query_frames) as source:
            estimator = create_estimator('vsnet', {'model': str(model), **options}, Scene(source.camera))
            results = localize_frames(source, estimator)
            stamps, poses = source.ground_truth()
        print_errors(results, stamps, poses)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--data', choices=['7scenes', 'synthetic'], default='7scenes')
    parser.add_argument('--model', help='a trained model (skips training)')
    parser.add_argument('--keep', type=Path, help='folder to keep the model and generated frames in')
    parser.add_argument('--steps', type=int, nargs='+', default=[VSNetTrainConfig.steps])
    parser.add_argument('--backbone', default=VSNetTrainConfig.backbone)
    parser.add_argument('--image-width', type=int, default=VSNetTrainConfig.image_width)
    parser.add_argument('--seed-resolution', type=float, default=VSNetTrainConfig.seed_resolution)
    parser.add_argument('--scene', default='home', help='synthetic scene layout')
    parser.add_argument('--frames', type=int, default=600, help='frames per synthetic sequence')
    parser.add_argument('--seed', type=int, default=0, help='synthetic scene seed')
    parser.add_argument('--path', choices=PATH_STYLES, default='loop', help='synthetic robot path style')
    parser.add_argument('--people', type=int, default=0, help='walking people per synthetic sequence')
    parser.add_argument('--challenges', nargs='*', default=[], choices=CHALLENGES,
                        help='synthetic challenges to switch on (default: none)')
    parser.add_argument('--voting', nargs='*', default=[], metavar='KEY=V1,V2',
                        help='also localize with each of these voting options (rapnet_loc.landmarks.voting.'
                             'VotingConfig), one at a time')
    parser.add_argument('--voting-base', nargs='*', default=[], metavar='KEY=V',
                        help='voting options that replace the defaults in every run')
    args = parser.parse_args()
    grid = voting_grid(args.voting, args.voting_base)
    torch.set_num_threads(len(os.sched_getaffinity(0)))
    with tempfile.TemporaryDirectory() as tmp:
        work = args.keep or Path(tmp)
        if args.data == '7scenes':
            if not DATA.is_dir():
                print(f'skipped: {DATA} not found')
                return
            folder, train_frames, query_frames = DATA, '0:349', '350:499'
        else:
            folder = synthetic_folder(work, args)
            train_frames, query_frames = f'0:{args.frames - 1}', f'{args.frames}:{2 * args.frames - 1}'
            coverage(folder, train_frames, query_frames)
        print(f'{platform.processor() or platform.machine()} ({len(os.sched_getaffinity(0))} cores): {args.data} '
              f'{folder.name}, training frames {train_frames}, queries {query_frames}')
        print(f'  command: {sys.executable} {" ".join(sys.argv)}')
        if args.model:
            evaluate(folder, query_frames, args.model, grid)
        for steps in sorted(args.steps) if args.model is None else []:
            cfg = VSNetTrainConfig(str(folder), str(work / 'vsnet.pt'), backbone=args.backbone,
                                   image_width=args.image_width, frames=train_frames,
                                   steps=steps, seed_resolution=args.seed_resolution)
            start = time.perf_counter()
            result = train_vsnet(cfg, resume=True)
            tail = result.losses[-100:]
            print(f'  trained to step {steps} ({args.backbone}, width {args.image_width}) in '
                  f'{time.perf_counter() - start:.0f} s: {result.num_landmarks} landmarks, mean loss of the last '
                  f'{len(tail)} steps {sum(tail) / max(len(tail), 1):.3f}')
            evaluate(folder, query_frames, result.model, grid)
        print(f'  load average during the run: {os.getloadavg()[0]:.2f}')


if __name__ == '__main__':
    main()
