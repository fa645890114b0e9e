"""TUM-style ATE and RPE of a trajectory against a reference, computed by ``evo``."""
from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
from evo.core import metrics, sync
from evo.core.trajectory import PoseTrajectory3D
from evo.core.units import Unit

from rapnet_loc.errors import TrajectoryFormatError
from rapnet_loc.io.trajectory import Trajectory


def to_evo(traj: Trajectory, name: str = '') -> PoseTrajectory3D:
    """``evo`` trajectory of ours (evo stores quaternions as ``w x y z``)."""
    return PoseTrajectory3D(positions_xyz=traj.positions, orientations_quat_wxyz=traj.quats[:, [3, 0, 1, 2]],
                            timestamps=traj.stamps_s, meta={'name': name})


@dataclass
class TumMetrics:
    """ATE (after alignment) and RPE statistics.

    Attributes:
        matches: associated pose pairs.
        ate: (M,) per-pose translation error in metres, after alignment.
        ate_rmse, ate_mean, ate_median, ate_max: statistics of ``ate``.
        rpe_trans_rmse: RMSE of the relative translation error over ``rpe_delta`` frames (metres).
        rpe_rot_rmse_deg: RMSE of the relative rotation error over ``rpe_delta`` frames (degrees).
        stamps_s: (M,) associated estimate stamps.
        aligned: the aligned, associated estimate; reference: the associated reference.
    """

    matches: int
    ate: np.ndarray
    ate_rmse: float
    ate_mean: float
    ate_median: float
    ate_max: float
    rpe_trans_rmse: float
    rpe_rot_rmse_deg: float
    stamps_s: np.ndarray
    aligned: PoseTrajectory3D
    reference: PoseTrajectory3D

    def summary(self) -> dict:
        return {'matches': self.matches, 'ate_rmse': self.ate_rmse, 'ate_mean': self.ate_mean,
                'ate_median': self.ate_median, 'ate_max': self.ate_max, 'rpe_trans_rmse': self.rpe_trans_rmse,
                'rpe_rot_rmse_deg': self.rpe_rot_rmse_deg}


def tum_metrics(est: Trajectory, ref: Trajectory, align: bool = True, scale: bool = False,
                max_diff_s: float = 0.02, rpe_delta: int = 1) -> TumMetrics:
    """ATE/RPE of ``est`` against ``ref``, associating stamps within ``max_diff_s``.

    Raises:
        TrajectoryFormatError: fewer than two associated poses (nothing to align).
    """
    ref_evo, est_evo = sync.associate_trajectories(to_evo(ref, 'reference'), to_evo(est, 'estimate'),
                                                   max_diff=max_diff_s)
    if est_evo.num_poses < 2:
        raise TrajectoryFormatError(f'only {est_evo.num_poses} estimated pose(s) lie within {max_diff_s} s of a '
                                    f'reference stamp; check that both files use the same clock')
    aligned = copy.deepcopy(est_evo)
    if align:
        aligned.align(ref_evo, correct_scale=scale)
    ape = metrics.APE(metrics.PoseRelation.translation_part)
    ape.process_data((ref_evo, aligned))
    rpe_t = metrics.RPE(metrics.PoseRelation.translation_part, delta=rpe_delta, delta_unit=Unit.frames)
    rpe_t.process_data((ref_evo, aligned))
    rpe_r = metrics.RPE(metrics.PoseRelation.rotation_angle_deg, delta=rpe_delta, delta_unit=Unit.frames)
    rpe_r.process_data((ref_evo, aligned))
    err = np.asarray(ape.error)
    rms = metrics.StatisticsType.rmse
    return TumMetrics(
        matches=est_evo.num_poses, ate=err, ate_rmse=float(ape.get_statistic(rms)), ate_mean=float(err.mean()),
        ate_median=float(np.median(err)), ate_max=float(err.max()),
        rpe_trans_rmse=float(rpe_t.get_statistic(rms)), rpe_rot_rmse_deg=float(rpe_r.get_statistic(rms)),
        stamps_s=est_evo.timestamps.copy(), aligned=aligned, reference=ref_evo)
