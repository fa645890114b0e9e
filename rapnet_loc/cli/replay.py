"""``rapnet-loc replay``: run the RGB-D front end over a bag or a 7-Scenes folder; write its trajectory and scores.

Outputs in ``--out DIR`` (``rapnet_loc.slam.run.replay``):

- ``trajectory.tum``: camera-to-world poses of the tracked frames (TUM format, stamps of the input frames);
- ``status.csv``: one row per frame, ``stamp,state,keypoints,tracked,ms`` (``state`` is ok, lost, relocalized,
  new_map, bridged, unanchored or dropped by ``--realtime``; ``rapnet_loc.slam.run``);
- ``trajectory_openloris.txt`` (bags only): the same poses in the OpenLORIS result format, frame ``d400_color``,
  scene and sequence number from the bag name (``office1-3.bag``: scene office, sequence 3);
- ``report.json``: frame counts, keyframes and timing; with ground truth also the TUM ATE/RPE (``rapnet_loc.eval.tum``,
  SE(3) alignment) and the plots ``replay_trajectory.png``/``replay_errors.png``. Ground truth: the 7-Scenes poses,
  a bag's ``/gt`` topic moved to the camera with ``/tf_static``, or ``--gt FILE`` (OpenLORIS format), interpolated
  at the tracked frames' stamps.

``--place-recognition NAME`` picks the recognizer that gives relocalization candidates (default: the
configuration's, ``bow``); ``--estimator NAME`` a pose estimator consulted while tracking is lost, whose pose seeds
the search (``rapnet_loc.landmarks``; default: none).

``--map-in FILE`` localizes against a saved map instead of building one (ORB-SLAM2's localization mode: no new
keyframes or points; relocalization against the map's keyframes at the start and whenever tracking is lost; the
map's feature extractor is used). ``--map-out FILE`` saves the map at the end (``rapnet_loc.slam.map_io``).

Several sources (``rapnet-loc replay office1-1.bag office1-2.bag ...``): OpenLORIS' lifelong setting
(``rapnet_loc.slam.run.replay_lifelong``). The sequences run in order through one front end that keeps its map;
each new one starts lost, so the front end relocalizes first. ``--out`` then holds one folder of the outputs above
per source, named after it, ``trajectory_openloris.txt`` with a ``seq: N`` block per bag (score it with
``rapnet-loc evaluate``: the first sequence is aligned, the others are scored in its frame) and ``report.json``
with each sequence's report. ``--frames``, ``--gt`` (each bag's own ``seq:`` block) and ``--odom-prior`` apply to
every source.

``--frames FIRST:LAST`` replays 7-Scenes frames FIRST..LAST (file numbers) or the part of a bag from FIRST to LAST
seconds after its start. ``--realtime`` replays as a live robot would run: each frame arrives at its stamp (relative
to the first) and the front end, when free, takes the newest frame that has arrived; the frames it had no time for
are dropped (a subscriber queue of one). Every frame is processed otherwise. ``--odom-prior`` (bags) predicts each
frame's pose from the wheel odometry on ``/odom`` (moved to the camera with ``/tf_static``) instead of the
constant-velocity motion model.

A frame folder's ``color-intrinsics.txt`` gives the colour camera (default: 7-Scenes' fx = fy = 525). 7-Scenes
depth is not registered to colour: when the folder's ``camera-intrinsics.txt`` (the depth camera's K) differs from
the colour camera's, depth is read where each keypoint's ray meets the depth image
(``rapnet_loc.slam.frame.Frame.create``).

Threads, as ORB-SLAM2 runs them: local mapping (triangulation, fusion, local bundle adjustment, keyframe culling)
works in a thread of its own on the keyframes tracking hands it, and the next frame is read and its features
extracted while a frame is tracked. Runs therefore differ slightly from one to the next; ``--sequential`` does
everything in one thread, in order, and is reproducible bit for bit.

Nothing computed is lost: ``status.csv`` and ``trajectory.tum`` grow frame by frame while the run goes on (the
poses as tracking gave them; at the end both are rewritten with the final poses), so even a process killed outright
leaves them. Ctrl-C (SIGINT) or SIGTERM finishes the frame at hand and writes every output (and ``--map-out``) for
the frames processed so far, with the signal in ``report.json`` (``interrupted``); the exit status is then 130. A
second signal stops at once. A damaged bag chunk or message, or an image that cannot be decoded, ends that input
there: the outputs hold the frames before it, ``report.json`` the reason (``input_error``), and the exit status is
2 (a lifelong replay goes on with the next bag).
"""
from __future__ import annotations

import argparse
import sys
from contextlib import ExitStack
from pathlib import Path

from rapnet_loc.cli.common import add_source_arguments
from rapnet_loc.io.atomic import check_writable
from rapnet_loc.io.source import open_source
from rapnet_loc.slam.config import SlamConfig
from rapnet_loc.slam.run import open_map, replay, replay_lifelong
from rapnet_loc.stop import StopRequest


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser('replay', help='run the RGB-D front end over a bag or a 7-Scenes folder',
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_source_arguments(p, several=True)
    p.add_argument('--estimator', metavar='NAME', help='pose estimator consulted while lost (rapnet_loc.landmarks '
                                                       'registry; default: the configuration\'s, none)')
    p.add_argument('--gt', type=Path, help='ground truth in the OpenLORIS result format (overrides the source\'s)')
    p.add_argument('--out', type=Path, default=Path('replay_out'), help='output folder (default: replay_out)')
    p.add_argument('--realtime', action='store_true',
                   help='drop the frames that arrive (at their stamps) while the front end is busy, like a live robot')
    p.add_argument('--odom-prior', action='store_true',
                   help='predict poses from the bag\'s wheel odometry (/odom) instead of constant velocity')
    p.add_argument('--map-in', type=Path, metavar='FILE',
                   help='localize against this map (localization mode, the map is not extended)')
    p.add_argument('--map-out', type=Path, metavar='FILE', help='save the map to FILE at the end')
    p.add_argument('--sequential', action='store_true',
                   help='one thread: local mapping runs on each keyframe before the next frame, and a run is '
                        'reproducible bit for bit (default: ORB-SLAM2\'s threads)')
    return p


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Arguments of ``rapnet-loc replay`` (without the command name), e.g. ``['bag', '--out', 'dir']``."""
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    return parser.parse_args(['replay', *argv])


def run(args: argparse.Namespace) -> int:
    check_writable(args.out, '--out folder', folder=True)
    if args.map_out:
        check_writable(args.map_out, '--map-out file')
    map_file = None
    if args.map_in:
        map_file, config = open_map(args.map_in, args.config, args.features, args.place_recognition, args.estimator)
    else:
        config = SlamConfig.resolve(args.config, args.features, args.place_recognition, args.estimator)
    stop = StopRequest()
    options = dict(realtime=args.realtime, odom_prior=args.odom_prior, map_file=map_file, gt_file=args.gt,
                   map_out=args.map_out, stop=stop, sequential=args.sequential)
    with ExitStack() as stack:
        stack.enter_context(stop)
        sources = [stack.enter_context(open_source(path, args.frames)) for path in args.source]
        if len(sources) == 1:
            reports = [replay(sources[0], config, args.out, **options)]
            print_report(reports[0], args.realtime)
        else:
            summary = replay_lifelong(sources, config, args.out, **options)
            reports = summary['sequences']
            for report in reports:
                print(f'{report["source"]}:')
                print_report(report, args.realtime)
            if summary['result']:
                print(f'lifelong result (a seq: block per bag): {summary["result"]}')
    print(f'outputs written to {args.out}')
    if args.map_out:
        print(f'map saved to {args.map_out}')
    if stop:
        print(f'interrupted by {stop.signal}: the outputs hold the frames processed before it')
        return 130
    for report in reports:
        if report['input_error']:
            print(f'rapnet-loc replay: error: {report["input_error"]} (the input ends there; the outputs hold the '
                  f'frames before it)', file=sys.stderr)
    return 2 if any(report['input_error'] for report in reports) else 0


def print_report(report: dict, realtime: bool) -> None:
    """Frames tracked, relocalizations, time per frame and ATE of one replayed sequence."""
    dropped = f', {report["dropped"]} dropped (--realtime)' if realtime else ''
    processed = report['frames'] - report['dropped']
    print(f'{report["tracked"]}/{processed} frames tracked ({100 * report["tracked_ratio"]:.1f} %){dropped}, '
          f'{report["relocalized"]} relocalizations, median {report["ms_median"]:.1f} ms per frame')
    if report['ate']:
        ate = report['ate']
        print(f'ATE RMSE {ate["ate_rmse"]:.4f} m over {ate["matches"]} poses (median {ate["ate_median"]:.4f} m)')
