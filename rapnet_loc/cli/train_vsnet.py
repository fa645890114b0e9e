"""``rapnet-loc train-vsnet``: train a VS-Net landmark-voting model of one scene on posed RGB-D frame folders
or bags with camera poses (ground truth, or a replay's trajectory; one world frame; ``rapnet_loc.landmarks.train``).

Builds the scene's landmarks from the frames' depth and poses, trains the segmentation + voting network and writes
the model file ``--out`` (give it to ``rapnet-loc localize --estimator vsnet --model MODEL``, or as the ``model``
option of the ``vsnet`` pose estimator). ``MODEL.train_state.pt`` is written every ``--checkpoint-every`` steps;
``--resume`` continues from it. ``MODEL.losses.csv`` lists the loss of each step.
"""
from __future__ import annotations

import argparse

from rapnet_loc.cli.common import add_config_flags, add_run_flags, config_from_args
from rapnet_loc.io.atomic import check_writable
from rapnet_loc.landmarks.train import VSNetTrainConfig, train_vsnet

_TYPES = {'frames': str}
_HELP = {
    'backbone': 'network encoder: xfeat (XFeat\'s pretrained blocks, fine-tuned), or a random one (see '
                'rapnet_loc.landmarks.network)',
    'embedding_dim': 'segmentation embedding size E', 'image_width': 'images are shrunk to this width',
    'poses': "training poses: gt = each source's ground truth, or a TUM file of camera poses (the trajectory.tum of "
             'rapnet-loc replay, to train in the frame of the map that run built)',
    'frames': 'FIRST:LAST range of each source: 7-Scenes file numbers or seconds of a bag (either side may be empty)',
    'stride': 'use every N-th frame',
    'voxel': 'voxel size of the fused surface (metres)',
    'seed_resolution': 'landmark patch size (metres)', 'min_points': 'drop patches with fewer surface points',
    'depth_max': 'ignore depth beyond this (metres)', 'batch': 'frames per step', 'steps': 'optimisation steps',
    'lr': 'Adam learning rate', 'seed': 'random seed', 'checkpoint_every': 'write the training state every N steps',
    'vote_weight': 'weight of the voting loss', 'margin': 'prototype triplet margin (cosine)',
    'negatives': 'hard-negative prototypes per landmark',
    'jitter': 'largest relative brightness / contrast change of a training image',
    'warp_scale': 'largest zoom (factor - 1, in or out) of the random warp of a training image',
    'warp_rotation': 'largest roll (degrees) of the random warp', 'warp_shift': 'largest shift (share of the size)',
}


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser('train-vsnet', help='train a VS-Net landmark-voting model of one scene',
                                   description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument('data', nargs='+', help='OpenLORIS-style bags or 7-Scenes-style frame folders of one scene')
    parser.add_argument('--out', required=True, metavar='MODEL', help='model file to write (.pt)')
    add_config_flags(parser, VSNetTrainConfig, _HELP, _TYPES)
    add_run_flags(parser, 'MODEL.train_state.pt')
    return parser


def run(args: argparse.Namespace) -> int:
    check_writable(args.out, '--out model file')
    cfg = config_from_args(VSNetTrainConfig, args)
    result = train_vsnet(cfg, resume=args.resume, progress=not args.no_progress)
    print(f'{result.num_landmarks} landmarks; final loss {result.losses[-1] if result.losses else float("nan"):.4f}; '
          f'model written to {result.model}')
    return 0
