"""RaP-Net extraction speed per width multiplier, input size and runtime on 7-Scenes redkitchen (../shared/data).

For each variant the ``rapnet`` extractor runs ``--frames`` frames after one warm-up frame (decoded before timing);
the table gives the median wall-clock ms per frame of the whole ``extract`` call and of the dense network alone
(F and R), the keypoints found and the multiply-adds of the network. The weights are random (seeded): timing does
not depend on their values, but the keypoint count does, so read that column as a load indication only.
Runtimes: ``torch`` (channels-last, the default), ``onnx`` (ONNX Runtime, exported here with
``rapnet_loc.rapnet.export``) and, on request, ``torch-nchw`` (contiguous layout).

    python benchmarks/bench_rapnet.py [--frames 2] [--widths 0.25 0.5 1.0] [--edges 320 640] [--runtimes ...] [--full]
"""
import argparse
import logging
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from rapnet_loc.features import create_extractor
from rapnet_loc.io.sevenscenes import SevenScenesFolder
from rapnet_loc.rapnet.export import export_onnx
from rapnet_loc.rapnet.model import VGG_BLOCKS, scaled
from rapnet_loc.rapnet.preprocess import resize_max_edge
from rapnet_loc.rapnet.weights import random_model, save_weights

DATA = Path(__file__).resolve().parents[1].parent / 'shared' / 'data' / '7scenes-redkitchen-seq01-dev'
RUNTIMES = {'torch': {'channels_last': True}, 'onnx': {'backend': 'onnx'}, 'torch-nchw': {'channels_last': False}}


def network_gmac(width: float, h: int, w: int) -> float:
    """Multiply-adds (1e9) of base net and region head at an h x w input."""
    c_in, base = 3, 0
    for channels in VGG_BLOCKS:
        for c in channels:
            base += 9 * c_in * scaled(c, width)
            c_in = scaled(c, width)
    region = c_in * scaled(32, width) * (9 + 25 + 49) + 3 * scaled(32, width)
    return (base * h * w + region * ((h + 1) // 2) * ((w + 1) // 2)) / 1e9


class TimedRunner:
    """A runner that records the wall-clock time of each call (the dense network alone)."""

    def __init__(self, runner):
        self.runner, self.info, self.seconds = runner, runner.info, []

    def __call__(self, x, region):
        start = time.perf_counter()
        out = self.runner(x, region)
        self.seconds.append(time.perf_counter() - start)
        return out


def time_variant(conf: dict, images: list[np.ndarray]) -> tuple[float, float, float]:
    """Median ms of extract and of the dense network alone, and the mean keypoint count (first image: warm-up)."""
    extractor = create_extractor('rapnet', conf)
    extractor.runner = TimedRunner(extractor.runner)
    total, counts = [], []
    for image in images:
        start = time.perf_counter()
        counts.append(len(extractor.extract(image)))
        total.append(time.perf_counter() - start)
    ms = 1000 * np.array(total[1:]), 1000 * np.array(extractor.runner.seconds[1:])
    return float(np.median(ms[0])), float(np.median(ms[1])), float(np.mean(counts[1:]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--frames', type=int, default=2, help='timed frames per variant (default: 2)')
    parser.add_argument('--widths', type=float, nargs='+', default=[0.25, 0.5, 1.0])
    parser.add_argument('--edges', type=int, nargs='+', default=[320, 640], help='max_edge values')
    parser.add_argument('--runtimes', nargs='+', default=['torch', 'onnx'], choices=list(RUNTIMES))
    parser.add_argument('--full', action='store_true', help='also width 1.0 at 640 (about a minute per frame)')
    args = parser.parse_args()
    if not DATA.is_dir():
        print(f'skipped: {DATA} not found')
        return
    logging.basicConfig(level=logging.WARNING)
    folder = SevenScenesFolder(DATA, 0, 10 * args.frames)
    images = [f.color for f in folder][::10][:args.frames + 1]
    print(f'{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, '
          f'torch {torch.__version__}: 7-Scenes redkitchen 640x480 frames, rapnet extractor, 520 keypoints max')
    print('| width | input | runtime | extract ms/frame | network ms/frame | GMAC | keypoints |')
    print('| --- | --- | --- | --- | --- | --- | --- |')
    with tempfile.TemporaryDirectory() as tmp:
        for width in args.widths:
            model, info = random_model(width, seed=0)
            files = {'torch': save_weights(Path(tmp) / f'w{width}.pt', model)}
            if 'onnx' in args.runtimes:
                files['onnx'] = export_onnx(model, info, Path(tmp) / f'w{width}.onnx').path
            for edge in args.edges:
                if width == 1.0 and edge > 320 and not args.full:
                    continue
                h, w = resize_max_edge(images[0], edge).shape[:2]
                for runtime in args.runtimes:
                    conf = {'width': width, 'max_edge': edge, 'device': 'cpu', **RUNTIMES[runtime],
                            'weights': str(files['onnx' if runtime == 'onnx' else 'torch'])}
                    total, dense, kps = time_variant(conf, images)
                    print(f'| {width:g} | {w}x{h} | {runtime} | {total:.0f} | {dense:.0f} | '
                          f'{network_gmac(width, h, w):.0f} | {kps:.0f} |', flush=True)
    print(f'load average after the run: {os.getloadavg()[0]:.2f}')


if __name__ == '__main__':
    main()
