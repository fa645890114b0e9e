"""What ``replay``, ``demo`` and ``evaluate`` report: TUM ATE of a trajectory against interpolated ground truth
(with plots), and the official OpenLORIS text table of a result file."""
from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np

from rapnet_loc.eval.openloris import ResultEval
from rapnet_loc.io.trajectory import Trajectory, interpolate_poses

LOG = logging.getLogger(__name__)

GT_MAX_GAP_S = 0.5  # as the official OpenLORIS evaluator interpolates ground truth
ROWS = (('poses', 'poses', '%8d'), ('matches', 'matches', '%8d'), ('ATE RMSE', 'ate_rmse', '%8.3f'),
        ('C-ATE RMSE', 'c_ate_rmse', '%8.3f'), ('AOE RMSE', 'aoe_rmse', '%8.3f'),
        ('correct rate', 'correct_rate', '%8.3f'), ('reloc score', 'reloc_score', '%8.3f'))


def evaluate_trajectory(traj: Trajectory, gt: tuple[np.ndarray, np.ndarray] | None, plot_dir: Path,
                        stem: str = 'replay') -> dict:
    """``{'ate': TUM metrics summary, 'plots': [...]}`` of ``traj`` against ground truth (stamps (N,), camera-to-world
    poses (N, 4, 4)) interpolated at its stamps, with plots ``plot_dir/<stem>_*.png``; ``{'ate': None}`` without
    ground truth or when it cannot be evaluated (the reason is logged)."""
    ref = None if gt is None else interpolate_poses(gt[0], gt[1], traj.stamps_ns, GT_MAX_GAP_S)
    if ref is None:
        return {'ate': None}
    if len(ref) < 2:
        LOG.warning('no ATE: the ground truth does not cover two tracked frames')
        return {'ate': None}
    from evo.core.geometry import GeometryException

    from rapnet_loc.eval.plots import plot_tum
    from rapnet_loc.eval.tum import tum_metrics
    try:
        metrics = tum_metrics(traj, ref)
    except GeometryException as exc:
        LOG.warning('no ATE: the trajectory cannot be aligned to the ground truth (%s); the tracked positions are '
                    'degenerate, e.g. all on one line', exc)
        return {'ate': None}
    return {'ate': metrics.summary(), 'plots': [str(p) for p in plot_tum(metrics, plot_dir, stem)]}


def _fmt(fmt: str, value: float | int | None) -> str:
    return '%8s' % 'nan' if value is None or (isinstance(value, float) and math.isnan(value)) else fmt % value


def format_table(ev: ResultEval) -> str:
    """The official evaluator's text table of one result file."""
    summary = ev.summary()
    seqs = sorted(summary['sequences'], key=int)
    lines = ['%-12s' % ev.scene + ' '.join('%8s' % s for s in seqs)]
    for label, key, fmt in ROWS:
        lines.append('%-12s' % label + ' '.join(_fmt(fmt, summary['sequences'][s][key]) for s in seqs))
    lines.append(f'(ATE threshold: {ev.thresholds.ate_m:.1f} m. AOE threshold: {ev.thresholds.aoe_deg:.1f} deg. '
                 f'Reloc time factor: {ev.thresholds.reloc_score_factor_s:.1f} s.)')
    return '\n'.join(lines)
