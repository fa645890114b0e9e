"""OpenLORIS-Scene metrics, reproducing the official evaluator (``openloris-scene-tools/benchmark/evaluate.py``).

Definitions, per result file (all its sequences share one world frame):

1. Parsing: NaN poses are dropped; repeated consecutive poses are dropped by default; a stamp that appears twice
   keeps its last pose. Ground truth is parsed the same way (always without repeats).
2. Ground truth (pose of ``base_link``) is moved to the result's declared ``frame:`` with the robot's static
   extrinsics: ``T_world_frame = T_world_base @ T_base_frame``.
3. Association: ground truth is interpolated at every estimated stamp that lies inside the ground truth with
   both bracketing samples less than 0.5 s away (positions linearly, orientations by the official slerp).
4. The first sequence is aligned to its ground truth (Horn, SE(3); Umeyama Sim(3) with ``scale``); the same
   transform is applied to every later sequence, which is not re-aligned (the lifelong setting).
5. Per matched pose: ATE = position error, AOE = rotation angle between estimate and ground truth. A pose is
   correct when ATE <= ate_threshold and |AOE| <= aoe_threshold.
6. Correct time sums, over correct poses, min(max_pose_interval, time to the next estimate) (the last pose runs to
   the end of the sequence); correct rate = correct time / (end - start of the ground truth), where end is the
   later of the last ground-truth and last estimated stamp. Reloc score = exp(-t / factor) if the first matched
   pose, t seconds after the ground truth starts, is correct, else 0.

Numerical details of the official code are kept because the published numbers depend on them:
- its slerp computes the dot product with ``q2.w * q2.w`` instead of ``q1.w * q2.w`` and swaps the two sine
  weights, so the ground-truth quaternions' sign matters: transformed ones get ``w >= 0``
  (``geometry.matrix_to_quat``), raw ones are used as written in the file;
- a sequence after the first whose estimates all fail to match reports ``matches = 1`` and ``ate_rmse = 0``
  (a ``numpy.matrix`` of shape (1, 0) sums to one zero); its other metrics are undefined or zero as usual.
``exact_slerp=True`` replaces that slerp with a correct one (then a perfect estimate has zero AOE). One detail
is not kept: with
``scale`` the official script converts the *scaled* rotation block to a quaternion, which distorts orientations;
here the Sim(3) rotation is applied to orientations on its own.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rapnet_loc.errors import CalibrationError, TrajectoryFormatError
from scipy.spatial.transform import Rotation

from rapnet_loc.geometry import matrix_to_quat, quat_to_matrix, rotation_angle
from rapnet_loc.io.calibration import Calibration
from rapnet_loc.io.trajectory import OpenLORISResult, Trajectory, read_openloris

MAX_MATCH_GAP_S = 0.5


@dataclass
class Thresholds:
    """Correctness constants of the official evaluation."""

    ate_m: float
    aoe_deg: float = 30.0
    max_pose_interval_s: float = 1.0
    reloc_score_factor_s: float = 60.0


@dataclass
class SequenceEval:
    """Metrics of one sequence plus the per-pose data behind them (for plots).

    Array attributes have one row per matched estimate (M rows), in stamp order.
    """

    poses: int
    matches: int
    ate_rmse: float
    c_ate_rmse: float
    aoe_rmse: float
    c_aoe_rmse: float
    correct_time: float
    correct_rate: float
    reloc_time: float
    reloc_score: float
    stamps_s: np.ndarray = field(repr=False)        # (M,)
    est_xyz: np.ndarray = field(repr=False)         # (M, 3) aligned estimate
    gt_xyz: np.ndarray = field(repr=False)          # (M, 3) interpolated ground truth
    ate: np.ndarray = field(repr=False)             # (M,) metres
    aoe_deg: np.ndarray = field(repr=False)         # (M,) degrees
    correct: np.ndarray = field(repr=False)         # (M,) bool
    est_all_xyz: np.ndarray = field(repr=False)     # (N, 3) every aligned estimate
    gt_all_xyz: np.ndarray = field(repr=False)      # (G, 3) full ground truth in the result frame
    unaligned_empty: bool = False                   # a later sequence without matches (official quirk)

    def summary(self) -> dict:
        """The official numbers, NaN as None (the schema of ``official-metrics-dev.json``)."""
        def num(v: float) -> float | None:
            return None if v is None or math.isnan(v) else float(v)
        if self.unaligned_empty:
            return {'poses': self.poses, 'matches': 1, 'ate_rmse': 0.0, 'c_ate_rmse': None, 'aoe_rmse': None,
                    'correct_rate': num(self.correct_rate), 'reloc_score': num(self.reloc_score)}
        return {'poses': self.poses, 'matches': self.matches, 'ate_rmse': num(self.ate_rmse),
                'c_ate_rmse': num(self.c_ate_rmse), 'aoe_rmse': num(self.aoe_rmse),
                'correct_rate': num(self.correct_rate), 'reloc_score': num(self.reloc_score)}


@dataclass
class ResultEval:
    """Evaluation of one result file."""

    scene: str
    frame: str
    thresholds: Thresholds
    scale: bool
    alignment: np.ndarray                       # (4, 4) world alignment applied (identity if none)
    sequences: dict[int, SequenceEval]

    def summary(self) -> dict:
        return {'scene': self.scene, 'frame': self.frame, 'ate_threshold': self.thresholds.ate_m,
                'aoe_threshold': self.thresholds.aoe_deg, 'scale': self.scale,
                'sequences': {str(k): v.summary() for k, v in sorted(self.sequences.items())}}


@dataclass
class _Seq:
    """A sequence in official form: unique sorted stamps, positions, rotations and raw quaternions."""

    t: np.ndarray      # (N,) float seconds
    xyz: np.ndarray    # (N, 3)
    rot: np.ndarray    # (N, 3, 3)
    quat: np.ndarray   # (N, 4) as used for interpolation


def _official_seq(traj: Trajectory) -> _Seq:
    t = traj.stamps_s
    # dict semantics of the official parser: the last pose of a repeated stamp wins; unique() sorts by stamp
    _, first_of_reversed = np.unique(t[::-1], return_index=True)
    keep = len(t) - 1 - first_of_reversed
    quat = traj.quats[keep]
    return _Seq(t[keep], traj.positions[keep], quat_to_matrix(quat), quat)


def _slerp_official(q1: np.ndarray, q2: np.ndarray, w1: np.ndarray, w2: np.ndarray) -> np.ndarray:
    """Slerp of (M, 4) quaternion pairs with the official code's dot product (see module doc)."""
    dot = np.sum(q1[:, :3] * q2[:, :3], axis=1) + q2[:, 3] * q2[:, 3]
    flip = dot < 0.0
    q2 = np.where(flip[:, None], -q2, q2)
    dot = np.where(flip, -dot, dot)
    linear = dot > 0.99999
    k1 = w1.copy()
    k2 = w2.copy()
    if np.any(~linear):
        d = dot[~linear]
        sin_theta = np.sqrt(1.0 - d * d)
        theta = np.arctan2(sin_theta, d)
        k1[~linear] = np.sin(w2[~linear] * theta) / sin_theta
        k2[~linear] = np.sin(w1[~linear] * theta) / sin_theta
    return k1[:, None] * q1 + k2[:, None] * q2


def _slerp_exact(q1: np.ndarray, q2: np.ndarray, w1: np.ndarray, w2: np.ndarray) -> np.ndarray:
    """Geodesic interpolation of (M, 4) quaternion pairs, ``w2`` of the way from ``q1`` to ``q2``."""
    r1 = Rotation.from_quat(q1)
    step = (r1.inv() * Rotation.from_quat(q2)).as_rotvec()
    return (r1 * Rotation.from_rotvec(step * w2[:, None])).as_quat()


def associate_interpolated(gt: _Seq, est_t: np.ndarray, exact_slerp: bool = False
                           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ground truth interpolated at estimated stamps.

    Args:
        gt: ground-truth sequence (sorted unique stamps, at least two).
        est_t: (N,) sorted estimated stamps.
        exact_slerp: interpolate orientations correctly instead of as the official code does.
    Returns:
        idx: (M,) indices into ``est_t`` of the matched estimates;
        xyz: (M, 3) interpolated positions; quat: (M, 4) interpolated (unnormalised) quaternions.
    """
    f = gt.t
    if len(f) < 2 or len(est_t) == 0:
        return np.zeros(0, int), np.zeros((0, 3)), np.zeros((0, 4))
    inside = np.flatnonzero((est_t >= f[0]) & (est_t <= f[-1]))
    key = est_t[inside]
    i = np.maximum(np.searchsorted(f, key, side='left') - 1, 0)
    k1, k2 = f[i], f[i + 1]
    ok = np.maximum(key - k1, k2 - key) < MAX_MATCH_GAP_S
    inside, key, i, k1, k2 = inside[ok], key[ok], i[ok], k1[ok], k2[ok]
    w2 = (key - k1) / (k2 - k1)
    w1 = 1.0 - w2
    xyz = w1[:, None] * gt.xyz[i] + w2[:, None] * gt.xyz[i + 1]
    quat = (_slerp_exact if exact_slerp else _slerp_official)(gt.quat[i], gt.quat[i + 1], w1, w2)
    return inside, xyz, quat


def align_points(model: np.ndarray, data: np.ndarray, with_scale: bool = False) -> tuple[np.ndarray, np.ndarray, float]:
    """Least-squares similarity ``data ~ s * R @ model + t`` (Horn/Umeyama, as the TUM tools compute it).

    Args:
        model, data: (N, 3) corresponding points.
    Returns:
        R (3, 3), t (3,), s.
    """
    mu_m, mu_d = model.mean(axis=0), data.mean(axis=0)
    mc, dc = model - mu_m, data - mu_d
    w = mc.T @ dc                              # sum of outer(model_i, data_i)
    u, d, vh = np.linalg.svd(w.T)
    s_mat = np.eye(3)
    if np.linalg.det(u) * np.linalg.det(vh) < 0:
        s_mat[2, 2] = -1.0
    rot = u @ s_mat @ vh
    scale = 1.0
    if with_scale:
        var_m = np.sum(mc * mc) / len(model)
        scale = float(np.trace(np.diag(d) @ s_mat) / len(model) / var_m)
    trans = mu_d - scale * rot @ mu_m
    return rot, trans, scale


def _rms(values: np.ndarray) -> float:
    return float(np.sqrt(np.dot(values, values) / len(values))) if len(values) else float('nan')


def _sequence_eval(est: _Seq, gt: _Seq, idx: np.ndarray, gt_xyz: np.ndarray, gt_quat: np.ndarray,
                   th: Thresholds) -> SequenceEval:
    est_xyz = est.xyz[idx]
    ate = np.linalg.norm(est_xyz - gt_xyz, axis=1)
    rel = np.swapaxes(quat_to_matrix(gt_quat), 1, 2) @ est.rot[idx]
    aoe = np.degrees(rotation_angle(rel)) if len(idx) else np.zeros(0)
    correct = (ate <= th.ate_m) & (np.abs(aoe) <= th.aoe_deg)
    stamps = est.t[idx]
    if len(idx) == 0:
        correct_time = correct_rate = reloc_score = 0.0
        reloc_time = float('inf')
    else:
        t0, tmin = stamps[0], gt.t[0]
        tmax = max(stamps[-1], gt.t[-1])
        reloc_time = max(t0 - tmin, 0.0)
        reloc_score = math.exp(-reloc_time / th.reloc_score_factor_s) if correct[0] else 0.0
        nxt = np.append(stamps[1:], tmax)
        credit = np.minimum(th.max_pose_interval_s, nxt - stamps)
        valid = np.cumprod(nxt > stamps).astype(bool)   # the official loop stops at the first non-increase
        correct_time = float(np.sum(np.where(valid & correct, credit, 0.0)))
        correct_rate = correct_time / (tmax - tmin)
    return SequenceEval(
        poses=len(est.t), matches=len(idx), ate_rmse=_rms(ate), c_ate_rmse=_rms(ate[correct]),
        aoe_rmse=_rms(np.abs(aoe)), c_aoe_rmse=_rms(aoe[correct]), correct_time=correct_time,
        correct_rate=correct_rate, reloc_time=reloc_time, reloc_score=reloc_score, stamps_s=stamps,
        est_xyz=est_xyz, gt_xyz=gt_xyz, ate=ate, aoe_deg=aoe, correct=correct, est_all_xyz=est.xyz,
        gt_all_xyz=gt.xyz)


def _gt_in_frame(gt: _Seq, offset: np.ndarray) -> _Seq:
    """Ground truth of ``base_link`` moved to another robot frame (``offset`` = pose of it in base_link)."""
    poses = np.zeros((len(gt.t), 4, 4))
    poses[:, :3, :3] = gt.rot
    poses[:, :3, 3] = gt.xyz
    poses[:, 3, 3] = 1.0
    moved = poses @ offset
    return _Seq(gt.t, moved[:, :3, 3].copy(), moved[:, :3, :3].copy(), matrix_to_quat(moved))


def evaluate_result(result: OpenLORISResult, gt: OpenLORISResult, calibration: Calibration,
                    thresholds: Thresholds, scale: bool = False, name: str = 'result',
                    exact_slerp: bool = False) -> ResultEval:
    """Official OpenLORIS metrics of ``result`` against ground truth ``gt`` (see the module doc).

    Raises:
        TrajectoryFormatError: missing ``scene:``/``frame:`` header, no sequences, or a sequence absent from
            the ground truth. CalibrationError: unknown scene or frame.
    """
    scene, frame = result.scene, result.frame
    if not scene:
        raise TrajectoryFormatError(f'{name}: no "scene:" header line')
    if not frame:
        raise TrajectoryFormatError(f'{name}: no "frame:" header line')
    if not result.sequences:
        raise TrajectoryFormatError(f'{name}: no "seq:" block')
    gt_frame = gt.frame or 'base_link'
    offset = calibration.transform(scene, gt_frame, frame)
    missing = sorted(set(result.sequences) - set(gt.sequences))
    if missing:
        raise TrajectoryFormatError(f'{name}: sequence(s) {missing} of scene {scene!r} are not in the ground '
                                    f'truth (it has {sorted(gt.sequences)})')
    ests = {k: _official_seq(v) for k, v in result.sequences.items()}
    gts = {k: _official_seq(gt.sequences[k]) for k in ests}
    if gt_frame != frame:
        gts = {k: _gt_in_frame(v, offset) for k, v in gts.items()}

    first = min(ests)
    idx0, gxyz0, _ = associate_interpolated(gts[first], ests[first].t, exact_slerp)
    transform = np.eye(4)
    if len(idx0):
        rot, trans, s = align_points(ests[first].xyz[idx0], gxyz0, scale)
        transform[:3, :3] = s * rot
        transform[:3, 3] = trans
        for seq in ests.values():
            seq.xyz = seq.xyz @ (s * rot).T + trans
            seq.rot = rot @ seq.rot
    sequences = {}
    for k in sorted(ests):
        idx, gxyz, gquat = associate_interpolated(gts[k], ests[k].t, exact_slerp)
        sequences[k] = _sequence_eval(ests[k], gts[k], idx, gxyz, gquat, thresholds)
        sequences[k].unaligned_empty = k != first and len(idx) == 0
    return ResultEval(scene, frame, thresholds, scale, transform, sequences)


def default_thresholds(calibration: Calibration, scene: str, ate_m: float | None = None,
                       aoe_deg: float | None = None, max_pose_interval_s: float | None = None,
                       reloc_score_factor_s: float | None = None) -> Thresholds:
    """Official per-scene thresholds from the calibration; any argument given overrides its value."""
    def pick(value: float | None, default: float) -> float:
        return default if value is None else value
    return Thresholds(ate_m=calibration.ate_threshold(scene) if ate_m is None else ate_m,
                      aoe_deg=pick(aoe_deg, calibration.aoe_threshold_deg),
                      max_pose_interval_s=pick(max_pose_interval_s, calibration.max_pose_interval_s),
                      reloc_score_factor_s=pick(reloc_score_factor_s, calibration.reloc_score_factor_s))


def evaluate_file(path: str | os.PathLike, gt_dir: str | os.PathLike, calibration: Calibration | None = None,
                  ate_threshold: float | None = None, aoe_threshold: float | None = None, scale: bool = False,
                  remove_repeated: bool = True, exact_slerp: bool = False, max_pose_interval: float | None = None,
                  reloc_score_factor: float | None = None) -> ResultEval:
    """Evaluate one OpenLORIS-format result file against ``gt_dir/gt_<scene>_1.txt``.

    ``calibration`` defaults to ``gt_dir/calibration.yaml`` when present, else the packaged OpenLORIS one;
    threshold arguments left as ``None`` take the calibration's (official) values.
    """
    gt_dir = Path(gt_dir)
    if calibration is None:
        local = gt_dir / 'calibration.yaml'
        calibration = Calibration.load(local if local.is_file() else None)
    result = read_openloris(path, remove_repeated=remove_repeated)
    if not result.scene:
        raise TrajectoryFormatError(f'{path}: no "scene:" header line')
    gt_path = gt_dir / f'gt_{result.scene}_1.txt'
    if not gt_path.is_file():
        known = sorted(p.name for p in gt_dir.glob('gt_*_1.txt'))
        raise CalibrationError(f'{path}: no ground truth for scene {result.scene!r}: {gt_path} does not exist '
                               f'(found: {", ".join(known) or "none"})')
    gt = read_openloris(gt_path, remove_repeated=True)
    thresholds = default_thresholds(calibration, result.scene, ate_threshold, aoe_threshold, max_pose_interval,
                                    reloc_score_factor)
    return evaluate_result(result, gt, calibration, thresholds, scale, name=str(path), exact_slerp=exact_slerp)
