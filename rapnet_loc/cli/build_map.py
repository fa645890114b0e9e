"""``rapnet-loc build-map``: build a localization map from an RGB-D source and known camera poses.

The poses are the source's ground truth (``--poses gt``): the 7-Scenes ``frame-*.pose.txt`` files, or a bag's
``/gt`` topic moved to the colour camera with ``/tf_static``, interpolated at each frame's stamp. A frame becomes a
keyframe every ``--kf-every`` frames or when the camera moved ``--kf-translation`` m or turned ``--kf-rotation``
degrees since the last keyframe; keyframes are merged into one map by projection matching
(``rapnet_loc.slam.map_builder``) and the map is saved to ``--out`` (``rapnet_loc.slam.map_io``), in the frame of
the poses, with the place recognizer (``--place-recognition``, default ``bow``) that indexes its keyframes, fitted on
them. Localize against it with ``rapnet-loc localize`` or ``rapnet-loc replay --map-in``; ``rapnet-loc retrieve``
lists the keyframes it recognizes for other frames.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from rapnet_loc.cli.common import add_source_arguments
from rapnet_loc.io.atomic import check_writable
from rapnet_loc.io.source import open_source
from rapnet_loc.slam.config import SlamConfig
from rapnet_loc.slam.map_builder import KeyframePolicy
from rapnet_loc.slam.run import build_map

POSE_SOURCES = ('gt',)


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser('build-map', help='build a localization map from RGB-D frames with known poses',
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_source_arguments(p)
    p.add_argument('--poses', required=True, choices=POSE_SOURCES,
                   help="camera poses of the frames: 'gt', the source's ground truth")
    p.add_argument('--out', type=Path, required=True, metavar='MAP', help='map file to write')
    p.add_argument('--kf-every', type=int, default=0, metavar='N',
                   help='a keyframe at least every N frames (default: 0, by motion only)')
    p.add_argument('--kf-translation', type=float, default=0.1, metavar='M',
                   help='a keyframe when the camera moved M metres since the last one (default: 0.1)')
    p.add_argument('--kf-rotation', type=float, default=10.0, metavar='DEG',
                   help='a keyframe when the camera turned DEG degrees since the last one (default: 10)')
    return p


def run(args: argparse.Namespace) -> int:
    check_writable(args.out, '--out map file')
    config = SlamConfig.resolve(args.config, args.features, args.place_recognition)
    policy = KeyframePolicy(args.kf_every, args.kf_translation, args.kf_rotation)
    with open_source(args.source, args.frames) as source:
        built = build_map(source, config, policy, args.out)
    slam_map = built.builder.map
    print(f'map of {len(slam_map.keyframes)} keyframes and {int((~slam_map.points.bad).sum())} points from '
          f'{built.n_frames} frames ({built.n_unposed} without a pose) written to {args.out}')
    return 0
