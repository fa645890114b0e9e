"""PNG plots of evaluations: trajectory against ground truth (top view) and per-pose errors over time."""
from __future__ import annotations

import io
import os
from pathlib import Path

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402  (backend must be chosen first)
import numpy as np  # noqa: E402

from rapnet_loc.eval.openloris import ResultEval  # noqa: E402
from rapnet_loc.eval.tum import TumMetrics  # noqa: E402
from rapnet_loc.io.atomic import atomic_write  # noqa: E402


def _save(fig: plt.Figure, path: Path) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format='png', dpi=110, bbox_inches='tight')
    plt.close(fig)
    with atomic_write(path, 'wb') as fh:
        fh.write(buf.getvalue())
    return path


def plot_openloris(ev: ResultEval, out_dir: str | os.PathLike, stem: str) -> list[Path]:
    """Write ``<stem>_trajectory.png`` and ``<stem>_errors.png`` for one evaluated result file."""
    out_dir = Path(out_dir)
    seqs = sorted(ev.sequences)
    fig, axes = plt.subplots(1, len(seqs), figsize=(5 * len(seqs), 4.6), squeeze=False)
    for ax, k in zip(axes[0], seqs):
        s = ev.sequences[k]
        ax.plot(s.gt_all_xyz[:, 0], s.gt_all_xyz[:, 1], '-', color='0.3', lw=1.2, label='ground truth')
        ax.plot(s.est_all_xyz[:, 0], s.est_all_xyz[:, 1], '-', color='tab:blue', lw=1.0, label='estimate (aligned)')
        if s.matches:
            ax.scatter(s.est_xyz[~s.correct, 0], s.est_xyz[~s.correct, 1], s=6, color='tab:red', zorder=3,
                       label='incorrect pose')
            ax.plot(*s.est_xyz[0, :2], 'o', color='tab:blue', ms=5)
        ax.plot(*s.gt_all_xyz[0, :2], 'o', color='0.3', ms=5)
        ax.set_title(f'{ev.scene} seq {k}: correct rate {s.correct_rate:.3f}')
        ax.set_xlabel('x [m]')
        ax.set_ylabel('y [m]')
        ax.set_aspect('equal', adjustable='datalim')
        ax.grid(alpha=0.3)
    axes[0][0].legend(loc='best', fontsize=8)
    fig.suptitle(f'{stem} (frame {ev.frame}; ATE threshold {ev.thresholds.ate_m:g} m)')
    paths = [_save(fig, out_dir / f'{stem}_trajectory.png')]

    fig, axes = plt.subplots(2, 1, figsize=(10, 6), sharex=True)
    t0 = min((s.stamps_s[0] for s in ev.sequences.values() if s.matches), default=0.0)
    for k in seqs:
        s = ev.sequences[k]
        if not s.matches:
            continue
        axes[0].plot(s.stamps_s - t0, s.ate, '.', ms=2, label=f'seq {k}')
        axes[1].plot(s.stamps_s - t0, np.abs(s.aoe_deg), '.', ms=2, label=f'seq {k}')
    axes[0].axhline(ev.thresholds.ate_m, color='tab:red', ls='--', lw=1, label='threshold')
    axes[1].axhline(ev.thresholds.aoe_deg, color='tab:red', ls='--', lw=1, label='threshold')
    axes[0].set_ylabel('ATE [m]')
    axes[1].set_ylabel('AOE [deg]')
    axes[1].set_xlabel('time since first match [s]')
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(loc='upper right', fontsize=8)
    fig.suptitle(f'{stem}: per-pose errors')
    paths.append(_save(fig, out_dir / f'{stem}_errors.png'))
    return paths


def plot_tum(m: TumMetrics, out_dir: str | os.PathLike, stem: str) -> list[Path]:
    """Write ``<stem>_trajectory.png`` and ``<stem>_errors.png`` for a TUM evaluation."""
    out_dir = Path(out_dir)
    ref, est = m.reference.positions_xyz, m.aligned.positions_xyz
    fig, ax = plt.subplots(figsize=(6, 5))
    ax.plot(ref[:, 0], ref[:, 1], '-', color='0.3', label='reference')
    ax.plot(est[:, 0], est[:, 1], '-', color='tab:blue', label='estimate (aligned)')
    ax.set_aspect('equal', adjustable='datalim')
    ax.set_xlabel('x [m]')
    ax.set_ylabel('y [m]')
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(f'{stem}: ATE RMSE {m.ate_rmse:.3f} m')
    paths = [_save(fig, out_dir / f'{stem}_trajectory.png')]
    fig, ax = plt.subplots(figsize=(10, 3.5))
    ax.plot(m.stamps_s - m.stamps_s[0], m.ate, '-', lw=1)
    ax.set_xlabel('time [s]')
    ax.set_ylabel('ATE [m]')
    ax.grid(alpha=0.3)
    ax.set_title(f'{stem}: translation error per pose')
    paths.append(_save(fig, out_dir / f'{stem}_errors.png'))
    return paths
