"""Generation of a synthetic OpenLORIS-style scene: several sequences in one world frame, as ROS 1 bags.

Outputs in ``out_dir``: ``NAME1-K.bag`` for K = 1..N (the layout of ``rapnet_loc.synth.bag``), the ground truth of
all sequences in ``gt_NAME_1.txt`` (OpenLORIS format, frame base_link) and ``calibration.yaml``. Files of these
names are replaced; each appears only once complete.

Everything is a function of ``seed``: sequence K draws its furniture moves, path, people, lighting and odometry
noise from independent streams of ``SeedSequence([seed, K])``, so switching one challenge leaves the others
unchanged.
"""
from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from rapnet_loc.errors import ConfigError
from rapnet_loc.io.types import CameraInfo
from rapnet_loc.synth.bag import SequenceBag, check_compression
from rapnet_loc.synth.camera import camera_for_size
from rapnet_loc.synth.challenges import EXPOSURE_S, Challenges, Illumination, expose, exposure_flow, motion_blur
from rapnet_loc.synth.layout import sequence_things
from rapnet_loc.synth.output import ground_truth_path, write_calibration, write_ground_truth
from rapnet_loc.synth.path import PATH_STYLES, BaseTrajectory, plan_trajectory
from rapnet_loc.synth.people import Person, plan_people
from rapnet_loc.synth.render import Frame, Renderer, bake_light_maps
from rapnet_loc.synth.robot import Robot, wheel_odometry
from rapnet_loc.synth.scenes import scene_spec
from rapnet_loc.synth.textures import TextureBank
from rapnet_loc.synth.world import LabelInfo, QuadSet, SceneSpec, World

LOG = logging.getLogger(__name__)

FPS = 30.0
MIN_DEPTH_M, MAX_DEPTH_M = 0.2, 10.0       # D400-like valid depth range; outside it depth is 0
EPOCH_NS = 1_560_000_000 * 10**9            # June 2019, when OpenLORIS-Scene was recorded
DAY_NS = 86_400 * 10**9
ILL_POSED_SPREAD = 0.05     # second over first singular value of a path's positions below which it is a line


@dataclass
class SequenceSummary:
    """One generated sequence.

    Attributes:
        seq: 1-based sequence number; bag: its file.
        stamps_ns: (N,) int64 image stamps.
        T_world_base: (N, 4, 4) ground truth ``gt_map`` -> ``base_link`` at the stamps.
        T_world_cam: (N, 4, 4) colour camera (``d400_color``) poses at the stamps.
        labels: label table (static objects, then people).
        moved: names of objects standing elsewhere than in sequence 1.
    """

    seq: int
    bag: Path
    stamps_ns: np.ndarray
    T_world_base: np.ndarray
    T_world_cam: np.ndarray
    labels: list[LabelInfo]
    moved: list[str]


@dataclass
class SynthSummary:
    """What ``generate`` wrote. ``render_s``/``total_s``: seconds spent rendering frames / in total."""

    out_dir: Path
    scene: str
    robot: str
    camera: CameraInfo
    challenges: Challenges
    seed: int
    bags: list[Path]
    gt_path: Path
    calibration_path: Path
    sequences: list[SequenceSummary] = field(default_factory=list)
    render_s: float = 0.0
    total_s: float = 0.0


def _positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ConfigError(f'{name} must be a positive integer, got {value!r}')
    return int(value)


def bag_path(out_dir: Path, scene: str, seq: int) -> Path:
    """``out_dir/NAME1-K.bag``, named like the OpenLORIS bags (scene NAME, session 1, sequence K)."""
    return Path(out_dir) / f'{scene}1-{seq}.bag'


class SequenceWorld:
    """Everything needed to render one sequence at any time ``t`` (seconds from its first frame).

    Args:
        spec: scene; robot: its robot; seq: 1-based sequence number; frames: frame count.
        challenges, seed, path: as for ``generate``; textures, renderer: shared by all sequences.
        revisit: path of an earlier sequence (of as many frames); this one starts at a random pose of it within
            its frames (when free there), as a robot coming back to a place it has seen.
    """

    def __init__(self, spec: SceneSpec, robot: Robot, seq: int, frames: int, challenges: Challenges, seed: int,
                 textures: TextureBank, renderer: Renderer, revisit: BaseTrajectory | None = None,
                 path: str = 'explore'):
        rngs = [np.random.default_rng(s) for s in np.random.SeedSequence([seed, seq]).spawn(6)]
        self.spec, self.robot, self.challenges = spec, robot, challenges
        self.textures, self.renderer = textures, renderer
        self.frame_t = np.arange(frames) / FPS
        duration = float(self.frame_t[-1])
        things = sequence_things(spec, seq, challenges.moved_furniture, robot.clearance_m, rngs[0])
        self.world = World.build(spec, textures, things)
        self.moved = [a.name for a, b in zip(spec.things, things) if a != b]
        start = None
        if revisit is not None:
            xy, yaw, _, _ = revisit.sample(np.array([rngs[1].uniform(0.0, duration)]))
            start = (xy[0], float(yaw[0]))
        self.trajectory: BaseTrajectory = plan_trajectory(self.world.free, robot.clearance_m, duration, rngs[1],
                                                          start, path)
        self.people: list[Person] = plan_people(challenges.people, self.world.free, self.trajectory,
                                                robot.T_base_color, self.frame_t, len(self.world.labels) + 1, rngs[2])
        self.labels = self.world.labels + [p.label for p in self.people]
        self.illumination = Illumination(len(spec.lights), challenges.illumination, rngs[3], duration)
        self.odom_rng = rngs[4]
        hours = rngs[5].uniform(8.0, 20.0)
        self.start_ns = EPOCH_NS + (seq - 1) * DAY_NS + int(hours * 3600e9)
        self.lights = np.array([light.position for light in spec.lights]).reshape(-1, 3)
        self._static_maps: dict[tuple, list[np.ndarray]] = {}

    def stamp_ns(self, t: np.ndarray) -> np.ndarray:
        """(K,) int64 stamps of times ``t`` (K,) seconds."""
        return self.start_ns + np.round(np.asarray(t) * 1e9).astype(np.int64)

    def camera_pose(self, t: float) -> np.ndarray:
        """(4, 4) ``T_world_cam`` of the colour camera at ``t``."""
        return self.trajectory.poses(np.array([t]))[0] @ self.robot.T_base_color

    def render(self, t: float, T_world_cam: np.ndarray | None = None) -> tuple[Frame, np.ndarray]:
        """The frame at ``t`` and its (H, W, 3) uint8 colour image with lighting, exposure and motion blur.

        The camera is the robot's at ``t`` unless ``T_world_cam`` (4, 4) is given (then there is no motion blur).
        """
        levels = self.illumination.light_levels(t)
        intensities = levels * np.array([light.intensity for light in self.spec.lights])
        key = tuple(levels)
        if key not in self._static_maps:
            self._static_maps[key] = bake_light_maps(self.world.quads, self.lights, intensities, self.spec.ambient)
        dynamic = QuadSet.concat([p.quads(self.textures, t) for p in self.people])
        quads = QuadSet.concat([self.world.quads, dynamic])
        maps = self._static_maps[key] + bake_light_maps(dynamic, self.lights, intensities, self.spec.ambient)
        moving = T_world_cam is None
        T_world_cam = self.camera_pose(t) if moving else T_world_cam
        frame = self.renderer.render(quads, maps, T_world_cam)
        image = expose(frame.albedo, frame.irradiance, self.illumination.gain(t), self.illumination.gamma(t))
        if self.challenges.motion_blur and moving:
            flow = exposure_flow(self.renderer.camera, frame.depth, self.camera_pose(t - EXPOSURE_S / 2),
                                 self.camera_pose(t + EXPOSURE_S / 2), T_world_cam)
            image = motion_blur(image, flow)
        return frame, image


def depth_to_mm(depth: np.ndarray) -> np.ndarray:
    """(H, W) uint16 millimetres of depth (H, W) metres; 0 outside [``MIN_DEPTH_M``, ``MAX_DEPTH_M``]."""
    valid = (depth >= MIN_DEPTH_M) & (depth <= MAX_DEPTH_M)
    return np.where(valid, np.round(depth * 1000.0), 0).astype(np.uint16)


def _write_sequence(seq_world: SequenceWorld, path: Path, compression: str, bar: tqdm) -> tuple[np.ndarray, float]:
    """Render and write one sequence bag; returns the image stamps (N,) and the seconds spent rendering."""
    robot, camera = seq_world.robot, seq_world.renderer.camera
    stamps = seq_world.stamp_ns(seq_world.frame_t)
    odom_t = np.arange(0.0, seq_world.frame_t[-1] + 1e-9, 1.0 / robot.odom_rate_hz)
    odom_stamps = seq_world.stamp_ns(odom_t)
    odom_poses, odom_v, odom_w = wheel_odometry(seq_world.trajectory, odom_t, seq_world.odom_rng)
    gt = seq_world.trajectory.poses(seq_world.frame_t)
    render_s, n_odom = 0.0, 0
    partial = path.with_name(path.name + '.partial')
    partial.unlink(missing_ok=True)
    try:
        with SequenceBag(partial, compression) as bag:
            def odometry_until(stamp: int) -> None:
                nonlocal n_odom
                while n_odom < len(odom_t) and odom_stamps[n_odom] <= stamp:
                    bag.write_odom(int(odom_stamps[n_odom]), n_odom, odom_poses[n_odom], odom_v[n_odom],
                                   odom_w[n_odom])
                    n_odom += 1

            bag.write_static(int(stamps[0]), camera, robot.static, seq_world.labels)
            for i, t in enumerate(seq_world.frame_t):
                odometry_until(stamps[i])
                start = time.perf_counter()
                frame, image = seq_world.render(float(t))
                render_s += time.perf_counter() - start
                bag.write_frame(int(stamps[i]), i, camera.frame_id, image, depth_to_mm(frame.depth), frame.label)
                bag.write_gt(int(stamps[i]), i, gt[i])
                bar.update(1)
            odometry_until(odom_stamps[-1])
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    os.replace(partial, path)
    return stamps, render_s


def path_spread(positions: np.ndarray) -> float:
    """Second over first singular value of the centred positions (N, D): near 0 for a path along a line, on which
    an alignment by positions alone (the OpenLORIS evaluator's) cannot fix the rotation about that line."""
    centred = np.asarray(positions, float) - np.mean(positions, axis=0)
    s = np.linalg.svd(centred, compute_uv=False)
    return float(s[1] / s[0]) if s[0] > 1e-9 else 0.0


def generate(out_dir: str | os.PathLike, scene: str = 'home', sequences: int = 2, frames: int = 300,
             width: int = 848, height: int = 480, seed: int = 0, challenges: Challenges = Challenges(),
             compression: str = 'bz2', progress: bool = True, path: str = 'explore') -> SynthSummary:
    """Generate ``sequences`` sequences of ``frames`` frames of scene ``scene`` into ``out_dir``.

    Args:
        out_dir: output folder (created when missing).
        scene: one of ``rapnet_loc.synth.scenes.SCENES`` (office, corridor, home, cafe, market).
        width, height: image size (see ``rapnet_loc.synth.camera`` for how intrinsics follow it).
        seed: non-negative integer; the same seed gives byte-identical bags.
        challenges: which difficulties to include.
        compression: bag chunk compression, ``bz2`` (as OpenLORIS), ``lz4`` or ``none``.
        progress: show a tqdm progress bar.
        path: robot path style (``rapnet_loc.synth.path.PATH_STYLES``): ``explore``, routes to far goals (nearly
            straight in 10 s); ``loop``, laps through the start that turn and, from about 20 s on, close loops.
            A sequence whose camera path is nearly a line (``path_spread`` under ``ILL_POSED_SPREAD``) is logged
            as a warning: the OpenLORIS alignment of its trajectory is ill-posed.
    Raises:
        ConfigError: invalid argument (unknown scene, compression or path style, non-positive counts or sizes,
            bad seed).
    """
    started = time.perf_counter()
    sequences = _positive_int('number of sequences', sequences)
    frames = _positive_int('number of frames', frames)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f'seed must be a non-negative integer, got {seed!r}')
    check_compression(compression)
    if path not in PATH_STYLES:
        raise ConfigError(f'unknown robot path style {path!r}; choose one of: {", ".join(PATH_STYLES)}')
    if not isinstance(challenges, Challenges):
        raise ConfigError(f'challenges must be a Challenges instance, got {type(challenges).__name__}')
    spec = scene_spec(scene, challenges)
    camera = camera_for_size(width, height)
    robot = Robot.for_scene(scene)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    textures = TextureBank()
    renderer = Renderer(camera, textures)
    summary = SynthSummary(out_dir, scene, robot.name, camera, challenges, int(seed), [],
                           ground_truth_path(out_dir, scene), out_dir / 'calibration.yaml')
    revisit = None          # sequences 2.. start somewhere on the path of sequence 1
    with tqdm(total=sequences * frames, desc=f'synth {scene}', unit='frame', disable=not progress) as bar:
        for seq in range(1, sequences + 1):
            seq_world = SequenceWorld(spec, robot, seq, frames, challenges, int(seed), textures, renderer, revisit,
                                      path)
            revisit = seq_world.trajectory if revisit is None else revisit
            bag = bag_path(out_dir, scene, seq)
            stamps, render_s = _write_sequence(seq_world, bag, compression, bar)
            T_world_base = seq_world.trajectory.poses(seq_world.frame_t)
            T_world_cam = T_world_base @ robot.T_base_color
            summary.bags.append(bag)
            summary.sequences.append(SequenceSummary(seq, bag, stamps, T_world_base, T_world_cam, seq_world.labels,
                                                     seq_world.moved))
            summary.render_s += render_s
            LOG.info('%s: %d frames, %d people, moved: %s', bag, frames, len(seq_world.people),
                     ', '.join(seq_world.moved) or 'nothing')
            if (spread := path_spread(T_world_cam[:, :3, 3])) < ILL_POSED_SPREAD:
                LOG.warning('%s: the camera path is nearly a straight line (second singular value %.1f %% of the '
                            'first): an alignment by positions alone, as the OpenLORIS evaluator does, leaves the '
                            'rotation about it undetermined and the correct rate meaningless; use more frames or '
                            '--path loop', bag, 100 * spread)
    write_ground_truth(summary.gt_path, scene, {s.seq: (s.stamps_ns, s.T_world_base) for s in summary.sequences})
    write_calibration(summary.calibration_path, scene, robot, camera, sequences)
    summary.total_s = time.perf_counter() - started
    return summary
