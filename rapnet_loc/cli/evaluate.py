"""``rapnet-loc evaluate``: official OpenLORIS-Scene metrics of result files (or TUM ATE/RPE through evo)."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from rapnet_loc.errors import ConfigError
from rapnet_loc.eval.openloris import evaluate_file
from rapnet_loc.eval.report import format_table
from rapnet_loc.io.atomic import atomic_write, check_writable
from rapnet_loc.io.calibration import Calibration
from rapnet_loc.io.trajectory import read_tum


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser('evaluate', help='OpenLORIS metrics of result files',
                       description='Official OpenLORIS-Scene metrics (correct rate, ATE, C-ATE, AOE, reloc score) of '
                                   'OpenLORIS-format result files; with --tum-gt, TUM ATE/RPE of TUM files via evo.')
    p.add_argument('results', nargs='+', type=Path, metavar='RESULT.txt')
    p.add_argument('--gt-dir', type=Path, help='folder with gt_<scene>_1.txt (and optionally calibration.yaml)')
    p.add_argument('--tum-gt', type=Path, help='reference TUM file: evaluate the results as TUM trajectories')
    p.add_argument('--json', type=Path, help='write the metrics of every result file to this JSON file')
    p.add_argument('--scale', action='store_true', help='Sim(3) alignment (monocular results)')
    p.add_argument('--plot', type=Path, metavar='DIR', help='write trajectory and error plots (PNG) into DIR')
    p.add_argument('--calibration', type=Path, help='calibration YAML (default: GT_DIR/calibration.yaml if present, '
                                                   'else the packaged OpenLORIS calibration)')
    p.add_argument('--ate-threshold', type=float, help='override the per-scene ATE threshold (metres)')
    p.add_argument('--aoe-threshold', type=float, help='override the AOE threshold (degrees, default 30)')
    p.add_argument('--max-pose-interval', type=float, help='longest credit of one correct pose (s, default 1)')
    p.add_argument('--reloc-factor', type=float, help='time constant of the reloc score (s, default 60)')
    p.add_argument('--keep-repeated', action='store_true', help='keep repeated consecutive poses')
    p.add_argument('--exact-slerp', action='store_true',
                   help='interpolate ground-truth orientation correctly instead of reproducing the official slerp')
    return p


def _stem(path: Path) -> str:
    return f'{path.parent.name}_{path.stem}' if path.parent.name else path.stem


def _run_openloris(args: argparse.Namespace) -> dict:
    calibration = Calibration.load(args.calibration) if args.calibration else None
    out = {}
    for path in args.results:
        ev = evaluate_file(path, args.gt_dir, calibration, args.ate_threshold, args.aoe_threshold, args.scale,
                           remove_repeated=not args.keep_repeated, exact_slerp=args.exact_slerp,
                           max_pose_interval=args.max_pose_interval, reloc_score_factor=args.reloc_factor)
        print(f'{path}:')
        print(format_table(ev))
        out[str(path)] = ev.summary()
        if args.plot:
            from rapnet_loc.eval.plots import plot_openloris
            for png in plot_openloris(ev, args.plot, _stem(path)):
                print(f'  plot: {png}')
    return out


def _run_tum(args: argparse.Namespace) -> dict:
    from rapnet_loc.eval.tum import tum_metrics
    ref = read_tum(args.tum_gt)
    out = {}
    for path in args.results:
        m = tum_metrics(read_tum(path), ref, scale=args.scale)
        print(f'{path}: {m.matches} matches, ATE RMSE {m.ate_rmse:.4f} m (median {m.ate_median:.4f}), '
              f'RPE {m.rpe_trans_rmse:.4f} m / {m.rpe_rot_rmse_deg:.3f} deg per frame')
        out[str(path)] = m.summary()
        if args.plot:
            from rapnet_loc.eval.plots import plot_tum
            for png in plot_tum(m, args.plot, _stem(path)):
                print(f'  plot: {png}')
    return out


def run(args: argparse.Namespace) -> int:
    if args.json:
        check_writable(args.json, '--json file')
    if args.plot:
        check_writable(args.plot, '--plot folder', folder=True)
    if (args.gt_dir is None) == (args.tum_gt is None):
        raise ConfigError('give exactly one of --gt-dir (OpenLORIS result files) or --tum-gt (TUM files)')
    if args.gt_dir is not None and not args.gt_dir.is_dir():
        raise ConfigError(f'--gt-dir {args.gt_dir} is not a directory')
    out = _run_tum(args) if args.tum_gt else _run_openloris(args)
    if args.json:
        with atomic_write(args.json) as fh:
            json.dump(out, fh, indent=1, sort_keys=True)
        print(f'metrics written to {args.json}')
    return 0
