"""``rapnet-loc localize``: localize every frame of an RGB-D source on its own against a saved map.

No tracking: each frame is relocalized independently (``rapnet_loc.slam.system.System.localize``): candidate
keyframes by bag-of-words similarity (``rapnet_loc.slam.keyframe_database``), 2D-3D matches with each candidate's
map points, PnP-RANSAC and pose optimisation, then a projection search of the local map and a final pose
optimisation. The camera-to-world poses of the localized frames go to ``--out`` (TUM format, in the map's frame);
frames that fail are left out and counted on stdout.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from tqdm import tqdm

from rapnet_loc.cli.replay import Source, parse_frames
from rapnet_loc.io.trajectory import Trajectory, write_tum
from rapnet_loc.slam.config import SlamConfig
from rapnet_loc.slam.map_io import MapFile, load_map
from rapnet_loc.slam.system import System, TrackResult


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser('localize', help='localize each frame of an RGB-D source against a saved map',
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('map', type=Path, metavar='MAP', help='map file (rapnet-loc build-map or replay --map-out)')
    p.add_argument('source', type=Path, metavar='SOURCE',
                   help='OpenLORIS-style bag (ROS 1 file or ROS 2 folder) or 7-Scenes frame folder')
    p.add_argument('--out', type=Path, required=True, metavar='TRAJ.tum', help='trajectory file to write (TUM)')
    p.add_argument('--features', help='feature extractor; must be the map\'s (default: the map\'s)')
    p.add_argument('--config', type=Path, help='YAML configuration (default: the map\'s; its extractor options '
                                               'are always the map\'s)')
    p.add_argument('--frames', metavar='FIRST:LAST', help='inclusive frame range, as for replay')
    return p


def localize_frames(map_file: MapFile, source: Source, config: SlamConfig) -> list[TrackResult]:
    """Each frame of ``source`` localized on its own against ``map_file`` with ``config`` (as ``settings`` gives)."""
    system = System(source.camera, config, depth_info=source.depth_camera, slam_map=map_file.map)
    return [system.localize(rgbd) for rgbd in tqdm(source.frames(), total=source.total, unit='frame',
                                                   desc='localize', dynamic_ncols=True)]


def run(args: argparse.Namespace) -> int:
    first, last = parse_frames(args.frames)
    config = SlamConfig.resolve(args.config, args.features)
    map_file = load_map(args.map, args.features or (config.features if args.config else None))
    config = map_file.settings(config if args.config else None)
    source = Source(args.source, first, last)
    try:
        results = localize_frames(map_file, source, config)
    finally:
        source.close()
    done = [r for r in results if r.T_wc is not None]
    traj = Trajectory.from_matrices([r.stamp_ns for r in done], np.array([r.T_wc for r in done]).reshape(-1, 4, 4))
    write_tum(args.out, traj, header=f'rapnet-loc localize {args.map} {args.source}\ncamera-to-world poses')
    ms = np.median([r.ms for r in results]) if results else float('nan')
    print(f'localized {len(done)}/{len(results)} frames, {len(results) - len(done)} failed, median {ms:.1f} ms per '
          f'frame; trajectory written to {args.out}')
    return 0
