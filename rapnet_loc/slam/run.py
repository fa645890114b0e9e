"""The offline runs of the front end over an RGB-D source, shared by the command line, the demo and the benchmarks:
``replay`` (track every frame, write the trajectory, status, report and optionally the map), ``replay_lifelong``
(several sequences of one scene through one front end, OpenLORIS' lifelong setting), ``localize_frames``
(a pose estimator on each frame on its own), ``build_map`` (a map from known poses) and ``retrieve`` (a map's top-k
keyframes for each frame, hloc-style pairs). ``open_map`` resolves the settings of a run against a saved map.

Outputs of ``replay`` in its folder:

- ``trajectory.tum``: camera-to-world poses of the tracked frames (TUM format, stamps of the input frames);
- ``status.csv``: one row per frame, ``stamp,state,keypoints,tracked,ms`` (``state`` is ok, lost, relocalized,
  new_map (a new map started there, see ``rapnet_loc.slam.tracking``), bridged (lost; the pose wheel odometry
  predicts from the last tracked frame, with ``--odom-prior``), unanchored (tracked in a map that never joined the
  first map's frame: no pose written) or dropped by the real-time model);
- ``trajectory_openloris.txt`` (bags only): the same poses in the OpenLORIS result format, frame ``d400_color``,
  scene and sequence number from the bag name (``office1-3.bag``: scene office, sequence 3);
- ``report.json``: frame counts, keyframes and timing, ``interrupted`` (the signal that stopped the run) and
  ``input_error`` (why the input ended early: a damaged frame); with ground truth also the TUM ATE/RPE
  (``rapnet_loc.eval.report``) and the plots ``replay_trajectory.png``/``replay_errors.png``.

``status.csv`` and ``trajectory.tum`` grow frame by frame while the run goes on (``track_sequence``), so that
nothing computed is lost even when the process is killed outright; at the end every output is written atomically
with the final poses.
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from rapnet_loc.errors import ConfigError
from rapnet_loc.eval.report import evaluate_trajectory
from rapnet_loc.features.base import Features, create_extractor
from rapnet_loc.io.atomic import LineLog, atomic_write
from rapnet_loc.io.source import BagSource, InputEnd, RGBDSource, until_damaged
from rapnet_loc.io.trajectory import (OpenLORISResult, Trajectory, format_stamp, interpolate_poses, tum_lines,
                                      write_openloris, write_tum)
from rapnet_loc.io.types import CameraInfo, RGBDFrame
from rapnet_loc.landmarks.base import PoseEstimate, PoseEstimator, Scene, create_estimator
from rapnet_loc.slam.config import SlamConfig
from rapnet_loc.slam.map_builder import KeyframePolicy, MapBuilder
from rapnet_loc.slam.map_io import MapFile, load_map, save_map
from rapnet_loc.slam.odometry import OdometryPrior
from rapnet_loc.slam.system import System, TrackResult
from rapnet_loc.stop import StopRequest
from rapnet_loc.vpr.base import View

STATUS_COLUMNS = ('stamp', 'state', 'keypoints', 'tracked', 'ms')
STATUS_HEADER = ','.join(STATUS_COLUMNS) + '\n'
OPENLORIS_FRAME = 'd400_color'
DEFAULT_ESTIMATOR = 'map'


def progress(frames: Iterable[RGBDFrame], source: RGBDSource, desc: str) -> Iterator[RGBDFrame]:
    """``frames`` of ``source`` with a progress bar."""
    return tqdm(frames, total=source.total, unit='frame', desc=desc, dynamic_ncols=True)


def open_map(path: Path, config_path: Path | None = None, features: str | None = None,
             place_recognition: str | None = None, pose_estimator: str | None = None) -> tuple[MapFile, SlamConfig]:
    """A map file and the settings to localize on it: the configuration file's (default: the map's own) with the
    map's feature extractor, and the place recognizer and pose estimator named (default: the configuration's).

    Raises:
        MapFormatError: the map cannot be read, or was built with another extractor than ``features`` (or the
            configuration file's).
    """
    base = SlamConfig.resolve(config_path, features) if config_path else None
    map_file = load_map(path, features or (base.features if base else None))
    return map_file, map_file.settings(base).override(place_recognition=place_recognition,
                                                      pose_estimator=pose_estimator)


def make_estimator(config: SlamConfig, camera: CameraInfo, depth_camera: CameraInfo | None,
                   map_file: MapFile | None) -> PoseEstimator | None:
    """The configuration's pose estimator for frames of ``camera`` (depth intrinsics ``depth_camera`` when not
    registered) in the scene of ``map_file`` (or none); None when the configuration names none."""
    if not config.pose_estimator:
        return None
    return create_estimator(config.pose_estimator, config.pose_estimator_conf,
                            Scene(camera, depth_camera, map_file, config))


def process_frames(system: System, frames: Iterable[RGBDFrame], realtime: bool) -> Iterator[TrackResult]:
    """``system.process`` of every frame; with ``realtime``, of those a live front end would have had time for.

    Live model: frame i arrives ``stamp_i - stamp_0`` after the first, processing takes ``TrackResult.ms``, and
    when the front end is free it takes the newest frame that has arrived; the older ones waiting are dropped
    (``TrackResult`` with state ``'dropped'``). Results come in stamp order.

    Without ``realtime``, a threaded ``system`` (``System.threaded``) gets each frame with its features, read and
    extracted in a second thread while the frame before is tracked (``read_ahead``); ``TrackResult.ms`` then counts
    the wait for them and the tracking.
    """
    if not realtime:
        if not system.threaded:
            yield from (system.process(frame) for frame in frames)
            return
        for start, frame, features in read_ahead(frames, system.extractor.extract):
            yield system.process(frame, features, start)
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


def read_ahead(frames: Iterable[RGBDFrame], extract: Callable[[np.ndarray], Features]
               ) -> Iterator[tuple[float, RGBDFrame, Features]]:
    """Each frame of ``frames`` with its features ``extract(frame.color)``, the next frame read and extracted in
    a second thread while the caller works on the current one; with the ``time.perf_counter()`` at which the caller
    asked for it."""
    frames = iter(frames)

    def load() -> tuple[RGBDFrame, Features] | None:
        frame = next(frames, None)
        return None if frame is None else (frame, extract(frame.color))

    with ThreadPoolExecutor(1, thread_name_prefix='read_ahead') as pool:
        ahead = pool.submit(load)
        while True:
            start = time.perf_counter()
            item = ahead.result()
            if item is None:
                return
            ahead = pool.submit(load)
            yield start, *item


def status_lines(results: Iterable[TrackResult], states: Iterable[str]) -> Iterator[str]:
    """The rows of ``status.csv`` (``STATUS_COLUMNS``) of ``results``, each with its state from ``states``."""
    for r, state in zip(results, states):
        yield f'{format_stamp(r.stamp_ns)},{state},{r.n_keypoints},{r.n_tracked},{r.ms:.2f}\n'


def output_state(result: TrackResult, T_wc: np.ndarray | None) -> str:
    """The state written for ``result`` whose pose in the first map's frame is ``T_wc``: its own, or
    ``'unanchored'`` for a pose in a map not (yet) joined to the first map's frame."""
    return 'unanchored' if result.T_wc is not None and T_wc is None and result.state != 'new_map' else result.state


def make_system(source: RGBDSource, config: SlamConfig, odom_prior: bool = False,
                map_file: MapFile | None = None, sequential: bool = False) -> System:
    """The front end for ``source``'s cameras (see ``replay`` for the options)."""
    odometry = OdometryPrior(*source.odometry()) if odom_prior else None
    system = System(source.camera, config, depth_info=source.depth_camera,
                    slam_map=None if map_file is None else map_file.map, odometry=odometry,
                    recognizer=None if map_file is None else map_file.recognizer_for(config),
                    estimator=make_estimator(config, source.camera, source.depth_camera, map_file),
                    threaded=not sequential)
    system.extractor  # made now, so that a bad feature option fails before any output is written
    return system


def replay(source: RGBDSource, config: SlamConfig, out: Path, realtime: bool = False, odom_prior: bool = False,
           map_file: MapFile | None = None, gt_file: Path | None = None, map_out: Path | None = None,
           stop: StopRequest | None = None, sequential: bool = False) -> dict:
    """Run the front end over ``source`` and write the outputs of the module doc into ``out``; the report.

    Args:
        config: settings; its ``pose_estimator``, when set, is consulted while tracking is lost.
        realtime: drop the frames a live front end would have had no time for (``process_frames``).
        odom_prior: predict poses from the source's wheel odometry instead of the constant-velocity model.
        map_file: localize against this map (localization mode; ``config`` from ``open_map``), None to build one.
        gt_file: ground truth in the OpenLORIS result format, instead of the source's own.
        map_out: save the map here at the end.
        stop: when it turns true (SIGINT, SIGTERM), the frames after the current one are left out and the outputs
            of those before are written; ``report['interrupted']`` names the signal (None when the run ended).
        sequential: one thread, as ``System(threaded=False)``: a run is reproducible bit for bit. Otherwise local
            mapping has a thread of its own and the next frame is read and its features extracted while a frame
            is tracked (ORB-SLAM2's threads; ``System.threaded``, ``process_frames``).
    Raises:
        ConfigError: no frames, or options the source cannot serve.
    """
    system = make_system(source, config, odom_prior, map_file, sequential)
    try:
        results, end = track_sequence(system, source, out, realtime, stop)
    finally:
        system.shutdown()
    report, _ = write_sequence(system, source, results, out, gt_file, stop.signal if stop else None, end.reason)
    if map_out:
        system.save_map(map_out)
    return report


def replay_lifelong(sources: list[RGBDSource], config: SlamConfig, out: Path, realtime: bool = False,
                    odom_prior: bool = False, map_file: MapFile | None = None, gt_file: Path | None = None,
                    map_out: Path | None = None, stop: StopRequest | None = None, sequential: bool = False) -> dict:
    """OpenLORIS' lifelong setting: the sequences ``sources`` (bags of one scene, in order) run through one front
    end that keeps its map; each new sequence starts lost (``System.start_sequence``: the robot may be anywhere),
    so it relocalizes first. Options as ``replay``'s (``gt_file``'s block of each bag's sequence number is used).

    Outputs in ``out``: one folder per source, named after it, with ``replay``'s outputs for that sequence;
    ``trajectory_openloris.txt`` (all bags) with a ``seq: N`` block per bag, which ``rapnet-loc evaluate`` scores
    with the lifelong metrics (first sequence aligned, the others in its frame); ``report.json``:
    ``{'sequences': [replay's report of each], 'keyframes', 'map_points', 'result'}`` (the path of that result file,
    None unless every source is a bag), ``interrupted`` (as ``replay``'s: the sources after the one at hand are
    left out).

    Raises:
        ConfigError: no sources, sources of other cameras or scenes, two bags of one sequence number, two sources
            of one name, or what ``replay`` raises.
    """
    check_sequences(sources)
    system = make_system(sources[0], config, odom_prior, map_file, sequential)
    results, written = [], []
    try:
        for n, source in enumerate(sources):
            if stop:
                break
            if n:
                system.start_sequence(OdometryPrior(*source.odometry()) if odom_prior else None)
            results.append(track_sequence(system, source, out / source.path.stem, realtime, stop))
            # written at once, so that a failure later loses nothing; with the merges done so far, which are all
            # that move its poses (Map.to_first_frame)
            merges = len(system.map.merged) if system.map else 0
            written.append((merges, write_sequence(system, source, results[-1][0], out / source.path.stem, gt_file,
                                                   stop.signal if stop else None, results[-1][1].reason)))
    finally:
        system.shutdown()
    reports, trajectories = [], {}
    for source, (seq_results, end), (merges, outputs) in zip(sources, results, written):
        if system.map and len(system.map.merged) != merges:     # a later merge moved its poses: written again
            outputs = write_sequence(system, source, seq_results, out / source.path.stem, gt_file,
                                     outputs[0]['interrupted'], end.reason)
        reports.append(outputs[0])
        trajectories[source.seq] = outputs[1]
    result = None
    if all(isinstance(s, BagSource) for s in sources):
        result = out / 'trajectory_openloris.txt'
        write_openloris(result, openloris_result(sources[0], config, trajectories))
    summary = {'sequences': reports, 'keyframes': len(system.map.keyframes) if system.map else 0,
               'map_points': int((~system.map.points.bad).sum()) if system.map else 0,
               'result': None if result is None else str(result), 'interrupted': stop.signal if stop else None}
    with atomic_write(out / 'report.json') as fh:
        json.dump(summary, fh, indent=1)
    if map_out:
        system.save_map(map_out)
    return summary


def check_sequences(sources: list[RGBDSource]) -> None:
    """Refuse sources that cannot be the sequences of one lifelong run (see ``replay_lifelong``)."""
    if not sources:
        raise ConfigError('no sources to replay')
    first = sources[0]
    for source in sources[1:]:
        cam, ref = source.camera, first.camera
        if (cam.width, cam.height) != (ref.width, ref.height) or not np.allclose(cam.K, ref.K):
            raise ConfigError(f'{source.path} has another camera ({cam.width}x{cam.height}, fx {cam.fx:.1f}) than '
                              f'{first.path} ({ref.width}x{ref.height}, fx {ref.fx:.1f}): the sequences of a '
                              f'lifelong replay come from one robot')
    stems = [s.path.stem for s in sources]
    if len(set(stems)) < len(stems):
        raise ConfigError(f'two sources have the same name ({", ".join(stems)}): their output folders would clash')
    bags = [s for s in sources if isinstance(s, BagSource)]
    if len(scenes := sorted({s.scene for s in bags if s.scene})) > 1:
        raise ConfigError(f'the bags are of several scenes ({", ".join(scenes)}); a lifelong replay takes the '
                          f'sequences of one scene')
    seqs = [s.seq for s in bags]
    if len(set(seqs)) < len(seqs):
        raise ConfigError(f'two bags have the same sequence number ({", ".join(map(str, seqs))}, from the names '
                          f'{", ".join(s.path.name for s in bags)}); name them SCENE-N, e.g. office1-2.bag')


def track_sequence(system: System, source: RGBDSource, out: Path, realtime: bool = False,
                   stop: StopRequest | None = None) -> tuple[list[TrackResult], InputEnd]:
    """``system`` over the frames of ``source`` (``process_frames``, with a progress bar), up to the frame at hand
    when ``stop`` turns true, or up to a damaged frame (``until_damaged``); the results and why the input ended.

    As each frame is done, its row and its pose as tracking gave it go to ``out``'s ``status.csv`` and
    ``trajectory.tum`` (``LineLog``): a run killed outright keeps them. ``write_sequence`` rewrites both.

    Raises:
        ConfigError: no frame in the range asked for; the damage itself when it comes before the first frame.
    """
    results, end = [], InputEnd()
    frames = until_damaged(progress(source.frames(), source, f'replay {source.path.name}'), end)
    header = f'rapnet-loc replay {source.path} (in progress: poses as tracked)\ncamera-to-world poses'
    with LineLog(out / 'status.csv', [STATUS_HEADER]) as status, \
            LineLog(out / 'trajectory.tum', tum_lines(Trajectory.empty(), header)) as trajectory:
        for result in process_frames(system, frames, realtime):
            results.append(result)
            T_wc = system.pose_in_first_map(result)
            status.write(status_lines([result], [output_state(result, T_wc)]))
            if T_wc is not None:
                trajectory.write(tum_lines(Trajectory.from_matrices([result.stamp_ns], T_wc[None])))
            if stop:
                break
    if not results:
        raise end.error or ConfigError(f'no frames to replay in {source.path} (in the range asked for)')
    return results, end


def write_sequence(system: System, source: RGBDSource, results: list[TrackResult], out: Path,
                   gt_file: Path | None = None, interrupted: str | None = None,
                   input_error: str | None = None) -> tuple[dict, Trajectory]:
    """The module doc's outputs of one replayed sequence written into ``out``; its report and trajectory.
    ``interrupted``: the signal that cut the sequence short (``report['interrupted']``), None when it ran to its end;
    ``input_error``: why its input ended early (``report['input_error']``: a damaged frame), None when it did not.

    Poses are written in the first map's frame (``System.pose_in_first_map``), so call this once the run is over:
    a frame tracked in a map started while lost gets its pose once that map has merged into an anchored one; the
    frames of a map that never did are written without a pose, as ``unanchored`` in ``status.csv`` (the first
    stays ``new_map``).
    """
    config = system.config
    poses = [system.pose_in_first_map(r) for r in results]
    states = [output_state(r, T) for r, T in zip(results, poses)]
    tracked = [(r.stamp_ns, T) for r, T in zip(results, poses) if T is not None]
    traj = Trajectory.from_matrices([s for s, _ in tracked], np.array([T for _, T in tracked]).reshape(-1, 4, 4))
    write_tum(out / 'trajectory.tum', traj, header=f'rapnet-loc replay {source.path}\ncamera-to-world poses')
    with atomic_write(out / 'status.csv') as fh:
        fh.writelines([STATUS_HEADER, *status_lines(results, states)])
    if isinstance(source, BagSource):
        write_openloris(out / 'trajectory_openloris.txt', openloris_result(source, config, {source.seq: traj}))
    processed = [r for r in results if r.state != 'dropped']
    ms = np.array([r.ms for r in processed])
    report = {'source': str(source.path), 'features': config.features,
              'place_recognition': config.place_recognition, 'frames': len(results),
              'dropped': len(results) - len(processed), 'tracked': len(tracked),
              'tracked_ratio': len(tracked) / len(processed), 'lost': states.count('lost'),
              'relocalized': states.count('relocalized'), 'bridged': states.count('bridged'),
              'new_maps': states.count('new_map'),
              'unanchored': states.count('unanchored'), 'keyframes': int(sum(r.keyframe for r in results)),
              'ms_median': float(np.median(ms)), 'ms_mean': float(ms.mean()), 'interrupted': interrupted,
              'input_error': input_error}
    report.update(evaluate_trajectory(traj, source.ground_truth(gt_file), out))
    with atomic_write(out / 'report.json') as fh:
        json.dump(report, fh, indent=1)
    return report, traj


def openloris_result(source: BagSource, config: SlamConfig, sequences: dict[int, Trajectory]) -> OpenLORISResult:
    """Trajectories of ``source``'s scene in the OpenLORIS result format (camera frame ``OPENLORIS_FRAME``)."""
    info = {'scene': source.scene} if source.scene else {}
    info.update({'slam': f'rapnet-loc-{config.features}', 'frame': OPENLORIS_FRAME})
    return OpenLORISResult(info=info, sequences=sequences)


@dataclass
class Localized:
    """One frame localized on its own: its stamp, the pose found (None when none) and the time it took (ms)."""

    stamp_ns: int
    estimate: PoseEstimate | None
    ms: float


def localize_frames(source: RGBDSource, estimator: PoseEstimator, out: LineLog | None = None,
                    stop: StopRequest | None = None, end: InputEnd | None = None) -> list[Localized]:
    """``estimator`` on each frame of ``source`` on its own, up to the frame at hand when ``stop`` turns true.

    Args:
        out: each pose found is written to this TUM file (camera-to-world) as soon as it is.
        end: a damaged frame ends the input there (``until_damaged``) and is kept here; None: its error is raised.
    """
    frames = source.frames() if end is None else until_damaged(source.frames(), end)
    results = []
    for rgbd in progress(frames, source, 'localize'):
        start = time.perf_counter()
        estimate = estimator.estimate(rgbd)
        results.append(Localized(rgbd.stamp_ns, estimate, 1000.0 * (time.perf_counter() - start)))
        if out is not None and estimate is not None:
            out.write(tum_lines(Trajectory.from_matrices([rgbd.stamp_ns], estimate.T_wc[None])))
        if stop:
            break
    return results


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


@dataclass
class BuiltMap:
    """What ``build_map`` made: the builder (map, camera, place recognizer), frames read and frames without a
    pose."""

    builder: MapBuilder
    n_frames: int
    n_unposed: int


def build_map(source: RGBDSource, config: SlamConfig, policy: KeyframePolicy, out: Path) -> BuiltMap:
    """A map of ``source``'s frames at their ground-truth poses, keyframes chosen by ``policy``, saved to ``out``.

    Raises:
        ConfigError: the source has no ground truth, or none of its frames has a pose.
    """
    gt = source.ground_truth()
    if gt is None:
        raise ConfigError(f'{source.path} has no ground-truth poses (7-Scenes pose files, or /gt and /tf_static in '
                          f'a bag)')
    pose_at = pose_lookup(*gt)
    builder = MapBuilder(source.camera, config, source.depth_camera)
    n_frames = n_unposed = since = 0
    last_T_wc = None
    for rgbd in progress(source.frames(), source, 'build-map'):
        n_frames += 1
        since += 1
        T_wc = pose_at(rgbd.stamp_ns)
        if T_wc is None:
            n_unposed += 1
        elif policy.due(last_T_wc, T_wc, since):
            builder.add(rgbd, T_wc)
            last_T_wc, since = T_wc, 0
    if builder.finish() is None:
        raise ConfigError(f'no frame of {source.path} (in the range asked for) has a ground-truth pose')
    save_map(out, builder.map, builder.camera, config, builder.recognizer)
    return BuiltMap(builder, n_frames, n_unposed)


def retrieve(map_file: MapFile, config: SlamConfig, source: RGBDSource,
             top_k: int) -> Iterator[tuple[str, list[tuple[str, float]]]]:
    """For each frame of ``source``: its name and the ``top_k`` keyframes of the map that ``config``'s place
    recognizer ranks highest (keyframe names, scores), best first. Frames are named after their files (7-Scenes)
    or their stamps, as keyframes are."""
    if top_k < 1:
        raise ConfigError(f'--top-k must be at least 1, got {top_k}')
    recognizer = map_file.recognizer_for(config)
    extractor = create_extractor(config.features, config.feature_conf)
    names = {k: kf.frame.name for k, kf in map_file.map.keyframes.items()}
    for rgbd in progress(source.frames(), source, 'retrieve'):
        view = View(extractor.extract(rgbd.color), rgbd.color)
        ranking = recognizer.query(recognizer.describe_checked(view), top_k)
        yield (rgbd.name or format_stamp(rgbd.stamp_ns),
               [(names[k], s) for k, s in zip(ranking.ids.tolist(), ranking.scores.tolist())])


def write_pairs(path: Path, pairs: Iterable[tuple[str, list[tuple[str, float]]]]) -> int:
    """Write retrieval pairs hloc-style, one ``query keyframe score`` line per pair (atomically); the number of
    queries."""
    n = 0
    with atomic_write(path) as fh:
        for query, ranked in pairs:
            n += 1
            fh.writelines(f'{query} {name} {score:.6f}\n' for name, score in ranked)
    return n
