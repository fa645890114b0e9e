"""``rapnet-loc train-netvlad``: train the NetVLAD layer of ``netvlad`` / ``patchnetvlad`` on posed frame folders
(7-Scenes layout) with NetVLAD's triplet margin loss, the backbone frozen (``rapnet_loc.vpr.train``).

Writes ``OUT/netvlad_<backbone>_k<K>.pt`` (pool and whitening) and prints its path: give it to the recognizers as
``checkpoint`` with the same ``backbone`` and ``clusters``. ``OUT/train_state.pt`` is written every
``--checkpoint-every`` steps; ``--resume`` continues from it. ``OUT/losses.csv`` lists the loss of each step, and
``OUT/backbone_maps.pt`` keeps the frames' backbone maps for a resumed or repeated run.
"""
from __future__ import annotations

import argparse

from rapnet_loc.cli.common import add_config_flags, add_run_flags, config_from_args
from rapnet_loc.io.atomic import check_writable
from rapnet_loc.vpr.train import NetVLADTrainConfig, train_netvlad

_TYPES = {'last': int}
_HELP = {
    'backbone': 'backbone (xfeat, rapnet, vgg16), frozen', 'clusters': 'NetVLAD clusters K',
    'num_pcs': 'whitened dimensions, at most (fewer where the samples or K x C allow fewer)',
    'first': 'first frame number', 'last': 'last frame number; None: the last',
    'stride': 'use every N-th frame',
    'pos_distance': 'positives are within this distance (metres) ...', 'pos_angle': '... and this angle (degrees)',
    'min_gap': 'positives of the same folder are at least this many frame numbers apart',
    'shared_frame': 'the folders\' poses share one world frame (sequences of one scene); otherwise frames of '
                    'different folders are always negatives',
    'neg_distance': 'negatives are farther than this (metres) ...',
    'neg_angle': '... or turned more than this (degrees)',
    'margin': 'triplet margin on L2 distances of the normalised VLAD vectors',
    'negatives': 'hard negatives per tuple', 'negative_pool': 'random negatives the hard ones are mined from',
    'cache_every': 'steps between refreshes of the vectors negatives are mined by',
    'tuples': 'tuples per step', 'steps': 'total optimisation steps', 'lr': 'Adam learning rate',
    'seed': 'random seed', 'checkpoint_every': 'write the training state every N steps',
    'wpca_frames': 'fit the whitening on at most this many training frames',
}


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser('train-netvlad', help='train the NetVLAD layer on posed frames (triplet loss)',
                                   description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument('data', nargs='+', help='7-Scenes-style frame folders with poses; several are trained on '
                                                'together')
    parser.add_argument('--out', required=True, help='output folder')
    add_config_flags(parser, NetVLADTrainConfig, _HELP, _TYPES)
    add_run_flags(parser, 'OUT/train_state.pt')
    return parser


def run(args: argparse.Namespace) -> int:
    check_writable(args.out, '--out folder', folder=True)
    cfg = config_from_args(NetVLADTrainConfig, args)
    print(train_netvlad(cfg, resume=args.resume, progress=not args.no_progress).checkpoint)
    return 0
