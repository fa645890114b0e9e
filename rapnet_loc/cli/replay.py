"""``rapnet-loc replay``: run the RGB-D front end over a bag or a 7-Scenes folder; write its trajectory and scores.

Outputs in ``--out DIR``:

- ``trajectory.tum``: camera-to-world poses of the tracked frames (TUM format, stamps of the input frames);
- ``status.csv``: one row per frame, ``stamp,state,keypoints,tracked,ms`` (``state`` is ok, lost, relocalized, or
  dropped by ``--realtime``);
- ``trajectory_openloris.txt`` (bags only): the same poses in the OpenLORIS result format, frame ``d400_color``,
  scene and sequence number from the bag name (``office1-3.bag``: scene office, sequence 3);
- ``report.json``: frame counts, keyframes and timing; with ground truth also the TUM ATE/RPE (``rapnet_loc.eval.tum``,
  SE(3) alignment) and the plots ``replay_trajectory.png``/``replay_errors.png``. Ground truth: the 7-Scenes poses,
  a bag's ``/gt`` topic moved to the camera with ``/tf_static``, or ``--gt FILE`` (OpenLORIS format), interpolated
  at the tracked frames' stamps.

``--map-in FILE`` localizes against a saved map instead of building one (ORB-SLAM2's localization mode: no new
keyframes or points; relocalization against the map's keyframes at the start and whenever tracking is lost; the
map's feature extractor is used). ``--map-out FILE`` saves the map at the end (``rapnet_loc.slam.map_io``).

``--frames FIRST:LAST`` replays 7-Scenes frames FIRST..LAST (file numbers) or the part of a bag from FIRST to LAST
seconds after its start. ``--realtime`` replays as a live robot would run: each frame arrives at its stamp (relative
to the first) and the front end, when free, takes the newest frame that has arrived; the frames it had no time for
are dropped (a subscriber queue of one). Every frame is processed otherwise. ``--odom-prior`` (bags) predicts each
frame's pose from the wheel odometry on ``/odom`` (moved to the camera with ``/tf_static``) instead of the
constant-velocity motion model.

7-Scenes depth is not registered to colour: when the folder has ``camera-intrinsics.txt`` (the depth camera's K),
depth is read where each keypoint's ray meets the depth image (``rapnet_loc.slam.frame.Frame.create``).
"""
from __future__ import annotations

import argparse
import json
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from tqdm import tqdm

from rapnet_loc.errors import ConfigError, TopicError, TrajectoryFormatError
from rapnet_loc.geometry import find_chain
from rapnet_loc.io.atomic import atomic_write
from rapnet_loc.io.openloris import OpenLORISBag
from rapnet_loc.io.sevenscenes import SevenScenesFolder
from rapnet_loc.io.trajectory import (OpenLORISResult, Trajectory, format_stamp, read_openloris, write_openloris,
                                      write_tum)
from rapnet_loc.io.types import CameraInfo, RGBDFrame
from rapnet_loc.slam.config import SlamConfig
from rapnet_loc.slam.map_io import load_map, save_map
from rapnet_loc.slam.odometry import OdometryPrior, interpolate_poses
from rapnet_loc.slam.system import System, TrackResult

STATUS_COLUMNS = ('stamp', 'state', 'keypoints', 'tracked', 'ms')
OPENLORIS_FRAME = 'd400_color'
GT_BASE_FRAME = 'base_link'
ODOM_BASE_FRAME = 'base_link'
GT_MAX_GAP_S = 0.5  # as the official OpenLORIS evaluator interpolates ground truth
SEVENSCENES_DEPTH_INTRINSICS = 'camera-intrinsics.txt'


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser('replay', help='run the RGB-D front end over a bag or a 7-Scenes folder',
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('source', type=Path, metavar='SOURCE',
                   help='OpenLORIS-style bag (ROS 1 file or ROS 2 folder) or 7-Scenes frame folder')
    p.add_argument('--features', help='feature extractor (default: the configuration\'s, orb); a different one '
                                      'than the configuration\'s runs with its default options')
    p.add_argument('--config', type=Path, help='YAML configuration (see rapnet_loc.slam.config)')
    p.add_argument('--gt', type=Path, help='ground truth in the OpenLORIS result format (overrides the source\'s)')
    p.add_argument('--out', type=Path, default=Path('replay_out'), help='output folder (default: replay_out)')
    p.add_argument('--frames', metavar='FIRST:LAST',
                   help='inclusive range: 7-Scenes file numbers, or seconds from the start of a bag; either side may '
                        'be empty')
    p.add_argument('--realtime', action='store_true',
                   help='drop the frames that arrive (at their stamps) while the front end is busy, like a live robot')
    p.add_argument('--odom-prior', action='store_true',
                   help='predict poses from the bag\'s wheel odometry (/odom) instead of constant velocity')
    p.add_argument('--map-in', type=Path, metavar='FILE',
                   help='localize against this map (localization mode, the map is not extended)')
    p.add_argument('--map-out', type=Path, metavar='FILE', help='save the map to FILE at the end')
    return p


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Arguments of ``rapnet-loc replay`` (without the command name), e.g. ``['bag', '--out', 'dir']``."""
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    return parser.parse_args(['replay', *argv])


def parse_frames(text: str | None) -> tuple[float | None, float | None]:
    """``'FIRST:LAST'`` (either side optional; non-negative numbers, ints where written without a point) ->
    ``(first, last)``."""
    if text is None:
        return None, None
    match = re.fullmatch(r'\s*(\d*\.?\d*)\s*:\s*(\d*\.?\d*)\s*', text)
    if not match or '.' in match.groups():
        raise ConfigError(f'--frames must be FIRST:LAST with non-negative numbers (either may be empty), got {text!r}')
    first, last = ((float(g) if '.' in g else int(g)) if g else None for g in match.groups())
    if first is not None and last is not None and last < first:
        raise ConfigError(f'--frames range ends before it starts: {text!r}')
    return first, last


def _openloris_gt(path: Path, camera_frame: str,
                  static: dict[tuple[str, str], np.ndarray] | None) -> tuple[np.ndarray, np.ndarray]:
    """Stamps and camera poses from an OpenLORIS-format file, moved to ``camera_frame`` with ``static``."""
    result = read_openloris(path, remove_repeated=True)
    if not result.sequences:
        raise TrajectoryFormatError(f'ground-truth file {path} has no "seq:" block')
    traj = result.sequences[min(result.sequences)]
    poses = traj.matrices
    frame = result.frame or camera_frame
    if frame != camera_frame:
        if static is None:
            raise ConfigError(f'ground truth {path} is in frame {frame!r}, not the camera frame {camera_frame!r}, '
                              f'and the source has no static transforms to convert it')
        poses = poses @ find_chain(static, frame, camera_frame)
    return traj.stamps_ns, poses


class Source:
    """Frames, camera models and ground truth of a replay source.

    Attributes:
        camera: colour camera; depth_camera: intrinsics of unregistered depth (7-Scenes) or None.
        total: frame count for the progress bar (None when unknown).
        is_bag: whether the source is a bag (OpenLORIS output is written).
        scene, seq: OpenLORIS scene name and sequence number guessed from the bag name (``office1-2.bag`` ->
            ``office``, 2), or None and 1.
    Args:
        path: bag or 7-Scenes folder.
        first, last: inclusive range (None: open) of 7-Scenes frame numbers (integers), or of seconds after the
            start of a bag.
    """

    def __init__(self, path: Path, first: float | None, last: float | None):
        self.path, self.first, self.last = path, first, last
        self.is_bag = not (path.is_dir() and any(path.glob('frame-*.color.*')))
        self.depth_camera: CameraInfo | None = None
        self.scene, self.seq = None, 1
        if self.is_bag:
            self.bag = OpenLORISBag(path)
            try:
                self.camera = self.bag.camera_info()
            except BaseException:
                self.bag.close()
                raise
            color = self.bag.bag.topics.get(self.bag.topics.color)
            self.total = None if color is None or first is not None or last is not None else color.count
            if match := re.match(r'([a-z]+)\d*-(\d+)', path.name):
                self.scene, self.seq = match.group(1), int(match.group(2))
        else:
            if any(isinstance(v, float) for v in (first, last)):
                raise ConfigError(f'the frame range of a 7-Scenes folder takes frame numbers, got {first}:{last}')
            self.folder = SevenScenesFolder(path, first, last)
            self.camera = self.folder.camera_info()
            self.total = len(self.folder)
            intrinsics = path / SEVENSCENES_DEPTH_INTRINSICS
            if intrinsics.is_file():
                self.depth_camera = CameraInfo(self.camera.width, self.camera.height,
                                               np.loadtxt(intrinsics).reshape(3, 3), frame_id=self.camera.frame_id)

    def frames(self) -> Iterator[RGBDFrame]:
        if not self.is_bag:
            yield from self.folder
            return
        yield from self.bag.frames_in_range(self.first, self.last)

    def static_transforms(self) -> dict[tuple[str, str], np.ndarray] | None:
        """The bag's ``/tf_static`` transforms, or None (no such topic, or a folder)."""
        if not self.is_bag:
            return None
        try:
            return self.bag.static_transforms()
        except TopicError:
            return None

    def odometry_prior(self) -> OdometryPrior:
        """Camera motion prior from the bag's wheel odometry and the camera's mount on ``base_link``."""
        if not self.is_bag:
            raise ConfigError(f'--odom-prior needs a bag with /odom; {self.path} is a 7-Scenes folder')
        static = self.static_transforms()
        if static is None:
            raise ConfigError(f'--odom-prior needs /tf_static in {self.path} to place the camera on the base')
        stamps, poses = self.bag.odometry()
        if len(stamps) < 2:
            raise ConfigError(f'--odom-prior: fewer than two odometry messages in {self.path}')
        camera_frame = self.camera.frame_id or OPENLORIS_FRAME
        return OdometryPrior(stamps, poses, find_chain(static, ODOM_BASE_FRAME, camera_frame))

    def ground_truth(self, gt_file: Path | None) -> tuple[np.ndarray, np.ndarray] | None:
        """Stamps (N,) and camera-to-world poses (N, 4, 4) of the colour camera, or None when there are none."""
        static = self.static_transforms()
        camera_frame = self.camera.frame_id or OPENLORIS_FRAME
        if gt_file is not None:
            return _openloris_gt(gt_file, camera_frame, static)
        if not self.is_bag:
            return self.folder.poses()
        try:
            stamps, poses = self.bag.ground_truth()
        except TopicError:
            return None
        if static is None or len(stamps) == 0:
            return None
        return stamps, poses @ find_chain(static, GT_BASE_FRAME, camera_frame)

    def close(self) -> None:
        if self.is_bag:
            self.bag.close()


def process_frames(system: System, frames: Iterator[RGBDFrame], realtime: bool) -> Iterator[TrackResult]:
    """``system.process`` of every frame; with ``realtime``, of those a live front end would have had time for.

    Live model: frame i arrives ``stamp_i - stamp_0`` after the first, processing takes ``TrackResult.ms``, and
    when the front end is free it takes the newest frame that has arrived; the older ones waiting are dropped
    (``TrackResult`` with state ``'dropped'``). Results come in stamp order.
    """
    if not realtime:
        yield from (system.process(frame) for frame in frames)
        return
    free_ns, held = None, None  # when the front end is next free; the newest frame arrived and not processed
    for frame in frames:
        if held is not None and (free_ns is None or frame.stamp_ns > free_ns):
            result = system.process(held)
            free_ns = (held.stamp_ns if free_ns is None else max(free_ns, held.stamp_ns)) + round(result.ms * 1e6)
            held = None
            yield result
        if held is not None:
            yield TrackResult(held.stamp_ns, 'dropped', None, 0, 0, 0.0, False)
        held = frame
    if held is not None:
        yield system.process(held)


def write_status(path: Path, results: list[TrackResult]) -> None:
    """``status.csv``: header ``STATUS_COLUMNS`` and one row per frame."""
    with atomic_write(path) as fh:
        fh.write(','.join(STATUS_COLUMNS) + '\n')
        for r in results:
            fh.write(f'{format_stamp(r.stamp_ns)},{r.state},{r.n_keypoints},{r.n_tracked},{r.ms:.2f}\n')


def evaluate(traj: Trajectory, gt: tuple[np.ndarray, np.ndarray] | None, out: Path) -> dict:
    """``{'ate': TUM metrics summary, 'plots': [...]}`` of ``traj`` against ground truth (stamps, poses)
    interpolated at its stamps; ``{'ate': None}`` without ground truth or when it cannot be evaluated."""
    ref = None if gt is None else interpolate_poses(gt[0], gt[1], traj.stamps_ns, GT_MAX_GAP_S)
    if ref is None:
        return {'ate': None}
    if len(ref) < 2:
        print('no ATE: the ground truth does not cover two tracked frames')
        return {'ate': None}
    from evo.core.geometry import GeometryException

    from rapnet_loc.eval.plots import plot_tum
    from rapnet_loc.eval.tum import tum_metrics
    try:
        metrics = tum_metrics(traj, ref)
    except GeometryException as exc:
        print(f'no ATE: the trajectory cannot be aligned to the ground truth ({exc}); the tracked positions are '
              f'degenerate, e.g. all on one line')
        return {'ate': None}
    print(f'ATE RMSE {metrics.ate_rmse:.4f} m over {metrics.matches} poses (median {metrics.ate_median:.4f} m)')
    return {'ate': metrics.summary(), 'plots': [str(p) for p in plot_tum(metrics, out, 'replay')]}


def run(args: argparse.Namespace) -> int:
    first, last = parse_frames(args.frames)
    config = SlamConfig.resolve(args.config, args.features)
    slam_map = None
    if args.map_in:
        map_file = load_map(args.map_in, args.features or (config.features if args.config else None))
        config, slam_map = map_file.settings(config if args.config else None), map_file.map
    source = Source(args.source, first, last)
    try:
        odometry = source.odometry_prior() if args.odom_prior else None
        system = System(source.camera, config, depth_info=source.depth_camera, slam_map=slam_map, odometry=odometry)
        frames = tqdm(source.frames(), total=source.total, unit='frame', desc='replay', dynamic_ncols=True)
        results = list(process_frames(system, frames, args.realtime))
        gt = source.ground_truth(args.gt)
    finally:
        source.close()
    if not results:
        raise ConfigError(f'no frames to replay in {args.source} (range {args.frames or "all"})')
    out = args.out
    tracked = [r for r in results if r.T_wc is not None]
    traj = Trajectory.from_matrices([r.stamp_ns for r in tracked], np.array([r.T_wc for r in tracked]))
    write_tum(out / 'trajectory.tum', traj, header=f'rapnet-loc replay {args.source}\ncamera-to-world poses')
    write_status(out / 'status.csv', results)
    if source.is_bag:
        info = {'scene': source.scene} if source.scene else {}
        info.update({'slam': f'rapnet-loc-{config.features}', 'frame': OPENLORIS_FRAME})
        write_openloris(out / 'trajectory_openloris.txt', OpenLORISResult(info=info, sequences={source.seq: traj}))
    processed = [r for r in results if r.state != 'dropped']
    ms = np.array([r.ms for r in processed])
    states = [r.state for r in results]
    report = {'source': str(args.source), 'features': config.features, 'frames': len(results),
              'dropped': len(results) - len(processed), 'tracked': len(tracked),
              'tracked_ratio': len(tracked) / len(processed), 'lost': states.count('lost'),
              'relocalized': states.count('relocalized'), 'keyframes': int(sum(r.keyframe for r in results)),
              'ms_median': float(np.median(ms)), 'ms_mean': float(ms.mean())}
    dropped = f', {report["dropped"]} dropped (--realtime)' if args.realtime else ''
    print(f'{len(tracked)}/{len(processed)} frames tracked ({100 * report["tracked_ratio"]:.1f} %){dropped}, '
          f'{report["relocalized"]} relocalizations, median {report["ms_median"]:.1f} ms per frame')
    report.update(evaluate(traj, gt, out))
    with atomic_write(out / 'report.json') as fh:
        json.dump(report, fh, indent=1)
    print(f'outputs written to {out}')
    if args.map_out:
        save_map(args.map_out, system.map, system.camera, config)
        print(f'map saved to {args.map_out}')
    return 0
