"""``rapnet-loc localize``: localize every frame of an RGB-D source on its own in a known scene.

No tracking: each frame goes to a pose estimator (``--estimator NAME``, ``rapnet_loc.landmarks`` registry). The
default, ``map`` (``rapnet_loc.slam.localizer``), relocalizes it as the front end does when lost: candidate
keyframes from the map's place recognizer (``--place-recognition``; default the map's own, ``bow``), 2D-3D matches
with each candidate's map points, PnP-RANSAC and pose optimisation, then a projection search of the local map and a
final pose optimisation. ``vsnet`` (``rapnet_loc.landmarks.vsnet``) needs no map but a model of the scene
(``--model``, from ``rapnet-loc train-vsnet``): ``rapnet-loc localize SOURCE --estimator vsnet --model MODEL``.
The camera-to-world poses of the localized frames go to ``--out`` (TUM format, in the
frame of the map or of the model's scene) as each is found; frames that fail are left out and counted on stdout.

Ctrl-C (SIGINT) or SIGTERM finishes the frame at hand and ends the run (exit status 130); a damaged frame or bag
chunk ends the input there (exit status 2). ``--out`` then holds the poses of the frames before.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from rapnet_loc.cli.common import add_source_arguments
from rapnet_loc.io.atomic import LineLog, check_writable
from rapnet_loc.io.source import InputEnd, open_source
from rapnet_loc.io.trajectory import Trajectory, tum_lines
from rapnet_loc.slam.config import SlamConfig
from rapnet_loc.slam.run import DEFAULT_ESTIMATOR, localize_frames, make_estimator, open_map
from rapnet_loc.stop import StopRequest


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser('localize', help='localize each frame of an RGB-D source on its own (map or scene model)',
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('map', type=Path, nargs='?', metavar='MAP',
                   help='map file (rapnet-loc build-map or replay --map-out); estimators with a model need none')
    add_source_arguments(p)
    p.add_argument('--out', type=Path, required=True, metavar='TRAJ.tum', help='trajectory file to write (TUM)')
    p.add_argument('--estimator', metavar='NAME', help=f'pose estimator (default: the configuration\'s, else '
                                                       f'{DEFAULT_ESTIMATOR})')
    p.add_argument('--model', help='the pose estimator\'s model option: a file or a name in models/ (vsnet)')
    return p


def run(args: argparse.Namespace) -> int:
    check_writable(args.out, '--out trajectory file')
    if args.map is None:
        map_file, config = None, SlamConfig.resolve(args.config, args.features, args.place_recognition,
                                                    args.estimator)
    else:
        map_file, config = open_map(args.map, args.config, args.features, args.place_recognition, args.estimator)
    config = config.override(pose_estimator=config.pose_estimator or DEFAULT_ESTIMATOR)
    if args.model:
        config.pose_estimator_conf['model'] = args.model
    header = f'rapnet-loc localize {args.map or args.model} {args.source}\ncamera-to-world poses'
    end = InputEnd()
    with open_source(args.source, args.frames) as source, StopRequest() as stop:
        estimator = make_estimator(config, source.camera, source.depth_camera, map_file)
        with LineLog(args.out, tum_lines(Trajectory.empty(), header)) as out:
            results = localize_frames(source, estimator, out, stop, end)
    if not results and end.error:
        raise end.error
    done = sum(r.estimate is not None for r in results)
    ms = np.median([r.ms for r in results]) if results else float('nan')
    print(f'localized {done}/{len(results)} frames, {len(results) - done} failed, median {ms:.1f} ms per '
          f'frame; trajectory written to {args.out}')
    if stop:
        print(f'interrupted by {stop.signal}: the trajectory holds the frames before it')
        return 130
    if end.error:
        print(f'rapnet-loc localize: error: {end.reason} (the input ends there; the trajectory holds the frames '
              f'before it)', file=sys.stderr)
        return 2
    return 0
