"""``rapnet-loc train-rapnet``: train RaP-Net on posed RGB-D frame folders (7-Scenes layout), one stage a run.

Stage ``base`` (D2-Net's loss or InfoNCE, ``--loss``) writes ``OUT/rapnet_wNNN_base.pt``; stage ``region`` (ratio
loss, base net frozen, ``--init`` the base file) writes ``OUT/rapnet_wNNN.pt``. Copy the latter to ``models/`` to
make it the default weights of the ``rapnet`` extractor. ``--stage region --backbone xfeat`` trains the region head
of ``xfeat_r`` and ``orb_r`` on XFeat's pretrained map and writes ``OUT/region_xfeat.pt`` (their default when in
``models/``). ``OUT/train_state.pt`` is written every
``--checkpoint-every`` steps; ``--resume`` continues from it. ``OUT/losses.csv`` lists the loss of each step.
"""
from __future__ import annotations

import argparse
import logging

import numpy as np

from rapnet_loc.cli.common import add_config_flags, add_run_flags, config_from_args
from rapnet_loc.io.atomic import check_writable
from rapnet_loc.rapnet.train import BACKBONES, BASE_LOSSES, REPEAT_LOSSES, STAGES, TrainConfig, train

LOG = logging.getLogger(__name__)
_TYPES = {'init': str, 'lr': float, 'pool_safe_radius': int, 'region_spread': float}
_LISTS = {'descriptor_scales': float}     # options taking several values
_HELP = {
    'stage': 'training stage',
    'backbone': 'region: the frozen map the head learns on: rapnet (the base net of --init) or xfeat (XFeat\'s '
                'pretrained map, for xfeat_r and orb_r)',
    'init': 'weights to start from (required for --stage region)',
    'width': 'network width multiplier', 'max_edge': 'longer edge of the training images (pixels)',
    'first': 'first frame number', 'last': 'last frame number', 'stride': 'use every N-th frame',
    'steps': 'total optimisation steps', 'lr': 'Adam learning rate; None: 1e-4 (base) or 1e-3 (region)',
    'seed': 'random seed',
    'checkpoint_every': 'write the training state every N steps',
    'loss': 'base: d2 (D2-Net), nce, dense-nce or d2-nce (InfoNCE against the other matches or every pixel; '
            'd2-nce weights it by soft detection scores as D2-Net does; D2-Net\'s loss collapses a network trained '
            'from scratch)',
    'max_gap': 'base: largest distance between the two frames of a pair, in used frames',
    'crop': 'base: train on windows of CROP x CROP pixels around the correspondences (0: whole images)',
    'correspondences': 'base: correspondences per pair', 'margin': 'base: triplet margin',
    'safe_radius': 'base (d2, dense-nce, d2-nce): negatives are farther than this from the true match (pixels)',
    'repeat_weight': 'base: weight of the repeatability loss (--repeat-loss) added to the descriptor loss (0: off)',
    'repeat_loss': 'base: peak (peak alignment) or cosim (R2D2 repeatability on a sharp detection map)',
    'descriptor_scales': 'base: also train the descriptors pooled from the whole images run at these fractions of '
                         'their size (the extractor option descriptor_scales)',
    'pool_safe_radius': 'base with --descriptor-scales: negatives of the pooled descriptors\' InfoNCE are farther '
                        'than this from the true match (pixels; default: --safe-radius)',
    'tuples': 'region: tuples per step', 'negatives': 'region: negatives per tuple',
    'positive_gap': 'region: anchor and positive at least this many used frames apart (1: any two; a gap reaching '
                    'another sequence or a revisit keeps people that walk by from being what the two share)',
    'loc_distance': 'region: location threshold in metres', 'loc_angle': 'region: location threshold in degrees',
    'region_spread': 'region: also pull each image\'s standard deviation of R to this value (default: the ratio '
                     'loss alone, which leaves R\'s scale free)',
}


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser('train-rapnet', help='train RaP-Net (base net or region head) on posed RGB-D frames',
                                   description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument('data', nargs='+', help='7-Scenes-style frame folders (colour, depth, poses); several '
                        'are trained on together')
    parser.add_argument('--out', required=True, help='output folder')
    add_config_flags(parser, TrainConfig, _HELP, _TYPES, _LISTS,
                     {'stage': STAGES, 'backbone': BACKBONES, 'loss': BASE_LOSSES, 'repeat_loss': tuple(REPEAT_LOSSES)})
    add_run_flags(parser, 'OUT/train_state.pt')
    return parser


def run(args: argparse.Namespace) -> int:
    check_writable(args.out, '--out folder', folder=True)
    cfg = config_from_args(TrainConfig, args)
    result = train(cfg, resume=args.resume, progress=not args.no_progress)
    losses = np.asarray(result.losses)
    k = max(1, len(losses) // 5)
    LOG.info('loss: first %d steps %.4f, last %d steps %.4f', k, losses[:k].mean(), k, losses[-k:].mean())
    print(result.weights)
    return 0
