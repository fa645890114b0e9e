"""``rapnet-loc build-map``: build a localization map from an RGB-D source and known camera poses.

The poses are the source's ground truth (``--poses gt``): the 7-Scenes ``frame-*.pose.txt`` files, or a bag's
``/gt`` topic moved to the colour camera with ``/tf_static``, interpolated at each frame's stamp. A frame becomes a
keyframe every ``--kf-every`` frames or when the camera moved ``--kf-translation`` m or turned ``--kf-rotation``
degrees since the last keyframe; keyframes are merged into one map by projection matching
(``rapnet_loc.slam.map_builder``) and the map is saved to ``--out`` (``rapnet_loc.slam.map_io``), in the frame of
the poses. Localize against it with ``rapnet-loc localize`` or ``rapnet-loc replay --map-in``.
"""
from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import numpy as np
from tqdm import tqdm

from rapnet_loc.cli.replay import Source, parse_frames
from rapnet_loc.slam.config import SlamConfig
from rapnet_loc.errors import ConfigError
from rapnet_loc.slam.map_builder import KeyframePolicy, MapBuilder
from rapnet_loc.slam.map_io import save_map
from rapnet_loc.slam.odometry import interpolate_poses

POSE_SOURCES = ('gt',)


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser('build-map', help='build a localization map from RGB-D frames with known poses',
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('source', type=Path, metavar='SOURCE',
                   help='OpenLORIS-style bag (ROS 1 file or ROS 2 folder) or 7-Scenes frame folder')
    p.add_argument('--poses', required=True, choices=POSE_SOURCES,
                   help="camera poses of the frames: 'gt', the source's ground truth")
    p.add_argument('--out', type=Path, required=True, metavar='MAP', help='map file to write')
    p.add_argument('--features', help="feature extractor (default: the configuration's, orb)")
    p.add_argument('--config', type=Path, help='YAML configuration (see rapnet_loc.slam.config)')
    p.add_argument('--frames', metavar='FIRST:LAST', help='inclusive frame range, as for replay')
    p.add_argument('--kf-every', type=int, default=0, metavar='N',
                   help='a keyframe at least every N frames (default: 0, by motion only)')
    p.add_argument('--kf-translation', type=float, default=0.1, metavar='M',
                   help='a keyframe when the camera moved M metres since the last one (default: 0.1)')
    p.add_argument('--kf-rotation', type=float, default=10.0, metavar='DEG',
                   help='a keyframe when the camera turned DEG degrees since the last one (default: 10)')
    return p


def pose_lookup(stamps_ns: np.ndarray, poses: np.ndarray) -> Callable[[int], np.ndarray | None]:
    """Function of a stamp (ns) returning the (4, 4) pose interpolated from ``poses`` (N, 4, 4) at ``stamps_ns``
    (N,) as ``interpolate_poses`` does, or None outside them or in a gap; each call reads only the neighbours."""
    order = np.argsort(stamps_ns, kind='stable')
    stamps_ns, poses = np.asarray(stamps_ns)[order], np.asarray(poses)[order]

    def at(stamp_ns: int) -> np.ndarray | None:
        i = int(np.searchsorted(stamps_ns, stamp_ns))
        rows = slice(max(i - 1, 0), i + 2)
        traj = interpolate_poses(stamps_ns[rows], poses[rows], np.array([stamp_ns]))
        return traj.matrices[0] if len(traj) else None
    return at


def run(args: argparse.Namespace) -> int:
    first, last = parse_frames(args.frames)
    config = SlamConfig.resolve(args.config, args.features)
    policy = KeyframePolicy(args.kf_every, args.kf_translation, args.kf_rotation)
    source = Source(args.source, first, last)
    try:
        gt = source.ground_truth(None)
        if gt is None:
            raise ConfigError(f'{args.source} has no ground-truth poses (7-Scenes pose files, or /gt and /tf_static '
                              f'in a bag)')
        pose_at = pose_lookup(*gt)
        builder = MapBuilder(source.camera, config, source.depth_camera)
        n_frames = n_unposed = since = 0
        last_T_wc = None
        for rgbd in tqdm(source.frames(), total=source.total, unit='frame', desc='build-map', dynamic_ncols=True):
            n_frames += 1
            since += 1
            T_wc = pose_at(rgbd.stamp_ns)
            if T_wc is None:
                n_unposed += 1
            elif policy.due(last_T_wc, T_wc, since):
                builder.add(rgbd, T_wc)
                last_T_wc, since = T_wc, 0
    finally:
        source.close()
    slam_map = builder.finish()
    if slam_map is None:
        raise ConfigError(f'no frame of {args.source} (range {args.frames or "all"}) has a ground-truth pose')
    save_map(args.out, slam_map, builder.camera, config)
    print(f'map of {len(slam_map.keyframes)} keyframes and {int((~slam_map.points.bad).sum())} points from '
          f'{n_frames} frames ({n_unposed} without a pose) written to {args.out}')
    return 0
