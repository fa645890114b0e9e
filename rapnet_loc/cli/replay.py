"""``rapnet-loc replay``: run the RGB-D front end over a bag or a 7-Scenes folder; write its trajectory and scores.

Outputs in ``--out DIR``:

- ``trajectory.tum``: camera-to-world poses of the tracked frames (TUM format, stamps of the input frames);
- ``status.csv``: one row per frame, ``stamp,state,keypoints,tracked,ms`` (``state`` is ok, lost or relocalized);
- ``trajectory_openloris.txt`` (bags only): the same poses in the OpenLORIS result format, frame ``d400_color``;
- ``report.json``: frame counts, keyframes and timing; with ground truth also the TUM ATE/RPE (``rapnet_loc.eval.tum``,
  SE(3) alignment) and the plots ``replay_trajectory.png``/``replay_errors.png``. Ground truth: the 7-Scenes poses,
  a bag's ``/gt`` topic moved to the camera with ``/tf_static``, or ``--gt FILE`` (OpenLORIS format), interpolated
  at the tracked frames' stamps.

7-Scenes depth is not registered to colour: when the folder has ``camera-intrinsics.txt`` (the depth camera's K),
depth is read where each keypoint's ray meets the depth image (``rapnet_loc.slam.frame.Frame.create``).
"""
from __future__ import annotations

import argparse
import json
import re
from collections import deque
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation, Slerp
from tqdm import tqdm

from rapnet_loc.errors import ConfigError, TopicError, TrajectoryFormatError
from rapnet_loc.geometry import invert
from rapnet_loc.io.atomic import atomic_write
from rapnet_loc.io.openloris import OpenLORISBag
from rapnet_loc.io.sevenscenes import SevenScenesFolder
from rapnet_loc.io.trajectory import (OpenLORISResult, Trajectory, format_stamp, read_openloris, write_openloris,
                                      write_tum)
from rapnet_loc.io.types import CameraInfo, RGBDFrame
from rapnet_loc.slam.config import SlamConfig
from rapnet_loc.slam.system import System, TrackResult

STATUS_COLUMNS = ('stamp', 'state', 'keypoints', 'tracked', 'ms')
OPENLORIS_FRAME = 'd400_color'
GT_BASE_FRAME = 'base_link'
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
                   help='inclusive frame range: 7-Scenes file numbers, or 0-based colour/depth pairs of a bag; '
                        'either side may be empty')
    return p


def parse_frames(text: str | None) -> tuple[int | None, int | None]:
    """``'FIRST:LAST'`` (either side optional) -> ``(first, last)``."""
    if text is None:
        return None, None
    match = re.fullmatch(r'\s*(\d*)\s*:\s*(\d*)\s*', text)
    if not match:
        raise ConfigError(f'--frames must be FIRST:LAST with non-negative integers (either may be empty), got {text!r}')
    first, last = (int(g) if g else None for g in match.groups())
    if first is not None and last is not None and last < first:
        raise ConfigError(f'--frames range ends before it starts: {text!r}')
    return first, last


def find_chain(transforms: dict[tuple[str, str], np.ndarray], parent: str, child: str) -> np.ndarray:
    """(4, 4) pose of ``child`` in ``parent`` composed from static transforms ``{(parent, child): T}``."""
    edges: dict[str, list[tuple[str, np.ndarray]]] = {}
    for (a, b), T in transforms.items():
        edges.setdefault(a, []).append((b, T))
        edges.setdefault(b, []).append((a, invert(T)))
    queue, seen = deque([(parent, np.eye(4))]), {parent}
    while queue:
        frame, T = queue.popleft()
        if frame == child:
            return T
        for nxt, step in edges.get(frame, []):
            if nxt not in seen:
                seen.add(nxt)
                queue.append((nxt, T @ step))
    raise TopicError(f'no chain of static transforms from {parent!r} to {child!r}; '
                     f'frames known: {", ".join(sorted(edges)) or "none"}')


def interpolate_poses(stamps_ns: np.ndarray, poses: np.ndarray, query_ns: np.ndarray,
                      max_gap_s: float = GT_MAX_GAP_S) -> Trajectory:
    """Poses (N, 4, 4) at stamps (N,) interpolated (linear, slerp) at ``query_ns`` (Q,) between neighbours at most
    ``max_gap_s`` apart; queries outside or in larger gaps are dropped."""
    order = np.argsort(stamps_ns, kind='stable')
    stamps_ns, poses = np.asarray(stamps_ns)[order], np.asarray(poses)[order]
    stamps_ns, first = np.unique(stamps_ns, return_index=True)
    poses = poses[first]
    query_ns = np.asarray(query_ns, dtype=np.int64)
    if len(stamps_ns) < 2:
        return Trajectory.empty()
    hi = np.clip(np.searchsorted(stamps_ns, query_ns), 1, len(stamps_ns) - 1)
    lo = hi - 1
    ok = (query_ns >= stamps_ns[0]) & (query_ns <= stamps_ns[-1])
    ok &= (stamps_ns[hi] - stamps_ns[lo]) <= max_gap_s * 1e9
    query_ns, lo, hi = query_ns[ok], lo[ok], hi[ok]
    w = ((query_ns - stamps_ns[lo]) / (stamps_ns[hi] - stamps_ns[lo]))[:, None]
    t = (1 - w) * poses[lo, :3, 3] + w * poses[hi, :3, 3]
    slerp = Slerp((stamps_ns - stamps_ns[0]) / 1e9, Rotation.from_matrix(poses[:, :3, :3]))
    out = np.tile(np.eye(4), (len(query_ns), 1, 1))
    out[:, :3, :3] = slerp((query_ns - stamps_ns[0]) / 1e9).as_matrix()
    out[:, :3, 3] = t
    return Trajectory.from_matrices(query_ns, out)


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
        scene: OpenLORIS scene name guessed from the bag name (``office1-1.bag`` -> ``office``), or None.
    """

    def __init__(self, path: Path, first: int | None, last: int | None):
        self.path, self.first, self.last = path, first, last
        self.is_bag = not (path.is_dir() and any(path.glob('frame-*.color.*')))
        self.depth_camera: CameraInfo | None = None
        self.scene = None
        if self.is_bag:
            self.bag = OpenLORISBag(path)
            try:
                self.camera = self.bag.camera_info()
            except BaseException:
                self.bag.close()
                raise
            color = self.bag.bag.topics.get(self.bag.topics.color)
            self.total = None if color is None else color.count
            if match := re.match(r'([a-z]+)\d*-\d+', path.name):
                self.scene = match.group(1)
        else:
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
        for frame in self.bag.rgbd_frames():
            if self.last is not None and frame.index > self.last:
                break
            if self.first is None or frame.index >= self.first:
                yield frame

    def ground_truth(self, gt_file: Path | None) -> tuple[np.ndarray, np.ndarray] | None:
        """Stamps (N,) and camera-to-world poses (N, 4, 4) of the colour camera, or None when there are none."""
        static = None
        camera_frame = self.camera.frame_id or OPENLORIS_FRAME
        if self.is_bag:
            try:
                static = self.bag.static_transforms()
            except TopicError:
                static = None
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


def write_status(path: Path, results: list[TrackResult]) -> None:
    """``status.csv``: header ``STATUS_COLUMNS`` and one row per frame."""
    with atomic_write(path) as fh:
        fh.write(','.join(STATUS_COLUMNS) + '\n')
        for r in results:
            fh.write(f'{format_stamp(r.stamp_ns)},{r.state},{r.n_keypoints},{r.n_tracked},{r.ms:.2f}\n')


def evaluate(traj: Trajectory, gt: tuple[np.ndarray, np.ndarray] | None, out: Path) -> dict:
    """``{'ate': TUM metrics summary, 'plots': [...]}`` of ``traj`` against ground truth (stamps, poses)
    interpolated at its stamps; ``{'ate': None}`` without ground truth or when it cannot be evaluated."""
    ref = None if gt is None else interpolate_poses(gt[0], gt[1], traj.stamps_ns)
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


def _load_config(args: argparse.Namespace) -> SlamConfig:
    config = SlamConfig.load(args.config) if args.config else SlamConfig()
    if args.features and args.features != config.features:
        config.features, config.feature_conf = args.features, {}
    return config


def run(args: argparse.Namespace) -> int:
    first, last = parse_frames(args.frames)
    config = _load_config(args)
    source = Source(args.source, first, last)
    try:
        system = System(source.camera, config, depth_info=source.depth_camera)
        results = [system.process(frame) for frame in tqdm(source.frames(), total=source.total, unit='frame',
                                                            desc='replay', dynamic_ncols=True)]
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
        write_openloris(out / 'trajectory_openloris.txt', OpenLORISResult(info=info, sequences={1: traj}))
    ms = np.array([r.ms for r in results])
    states = [r.state for r in results]
    report = {'source': str(args.source), 'features': config.features, 'frames': len(results),
              'tracked': len(tracked), 'tracked_ratio': len(tracked) / len(results), 'lost': states.count('lost'),
              'relocalized': states.count('relocalized'), 'keyframes': int(sum(r.keyframe for r in results)),
              'ms_median': float(np.median(ms)), 'ms_mean': float(ms.mean())}
    print(f'{len(tracked)}/{len(results)} frames tracked ({100 * report["tracked_ratio"]:.1f} %), '
          f'{report["relocalized"]} relocalizations, median {report["ms_median"]:.1f} ms per frame')
    report.update(evaluate(traj, gt, out))
    with atomic_write(out / 'report.json') as fh:
        json.dump(report, fh, indent=1)
    print(f'outputs written to {out}')
    return 0
