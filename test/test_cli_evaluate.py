"""``rapnet-loc evaluate``: JSON contract, table, plots, TUM metrics through evo, option errors."""
import json
import subprocess
import sys

import numpy as np
import pytest

from rapnet_loc.cli.main import main
from rapnet_loc.geometry import pose_matrix, yaw_quat
from rapnet_loc.io.trajectory import Trajectory, write_tum


def test_json_and_plots_of_published_results(shared_data, tmp_path, capsys):
    root = shared_data / 'openloris'
    files = [root / 'results-dev/lifelong/ds-slam/cafe-1.txt', root / 'results-dev/per-seq/odom/home-1-2-odom.txt']
    out = tmp_path / 'metrics.json'
    assert main(['evaluate', *map(str, files), '--gt-dir', str(root), '--json', str(out),
                 '--plot', str(tmp_path / 'plots')]) == 0
    got = json.loads(out.read_text())
    official = json.loads((root / 'official-metrics-dev.json').read_text())
    for path in files:
        exp = official[path.relative_to(root / 'results-dev').as_posix()]
        mine = got[str(path)]
        assert mine.keys() == exp.keys()
        for seq, metrics in exp['sequences'].items():
            assert mine['sequences'][seq].keys() == metrics.keys()
            for key, value in metrics.items():
                assert mine['sequences'][seq][key] == pytest.approx(value, rel=1e-6)
    text = capsys.readouterr().out
    assert 'correct rate' in text and 'reloc score' in text and '(ATE threshold: 3.0 m.' in text
    pngs = sorted(p.name for p in (tmp_path / 'plots').iterdir())
    assert pngs == ['ds-slam_cafe-1_errors.png', 'ds-slam_cafe-1_trajectory.png',
                    'odom_home-1-2-odom_errors.png', 'odom_home-1-2-odom_trajectory.png']
    for png in (tmp_path / 'plots').iterdir():
        assert png.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n' and png.stat().st_size > 10_000


def test_tum_inputs_are_scored_by_evo(tmp_path, capsys):
    n = 200
    t = np.arange(n) / 30.0
    stamps = (1_000 * 10**9 + np.round(t * 1e9)).astype(np.int64)
    ref = Trajectory(stamps, np.stack([np.cos(t), np.sin(t), 0.1 * t], 1), yaw_quat(t))
    rng = np.random.default_rng(3)
    noisy = Trajectory(stamps, ref.positions + rng.normal(scale=0.01, size=(n, 3)), ref.quats)
    moved = Trajectory.from_matrices(stamps, pose_matrix([3, 1, 0], yaw_quat(0.7)) @ noisy.matrices)
    write_tum(tmp_path / 'gt.tum', ref)
    write_tum(tmp_path / 'est.tum', moved)
    assert main(['evaluate', str(tmp_path / 'est.tum'), '--tum-gt', str(tmp_path / 'gt.tum'),
                 '--json', str(tmp_path / 'm.json')]) == 0
    m = json.loads((tmp_path / 'm.json').read_text())[str(tmp_path / 'est.tum')]
    assert m['matches'] == n
    assert m['ate_rmse'] == pytest.approx(0.01 * np.sqrt(3), rel=0.15)   # alignment removed the world offset
    assert 'ATE RMSE' in capsys.readouterr().out


def test_option_errors_are_reported_without_traceback(tmp_path):
    tum = tmp_path / 'x.tum'
    tum.write_text('1.0 0 0 0 0 0 0 1\n')
    proc = subprocess.run([sys.executable, '-m', 'rapnet_loc.cli.main', 'evaluate', str(tum)],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert 'give exactly one of --gt-dir' in proc.stderr and 'Traceback' not in proc.stderr
    proc = subprocess.run([sys.executable, '-m', 'rapnet_loc.cli.main', 'evaluate', str(tum), '--gt-dir',
                           str(tmp_path / 'nowhere')], capture_output=True, text=True)
    assert proc.returncode == 2 and 'is not a directory' in proc.stderr
    proc = subprocess.run([sys.executable, '-m', 'rapnet_loc.cli.main', 'evaluate', str(tum), '--gt-dir',
                           str(tmp_path)], capture_output=True, text=True)
    assert proc.returncode == 2 and 'x.tum:1: pose line before any "seq:" line' in proc.stderr
    headless = tmp_path / 'r.txt'
    headless.write_text('frame: base_link\nseq: 1\n1.0 0 0 0 0 0 0 1\n')
    proc = subprocess.run([sys.executable, '-m', 'rapnet_loc.cli.main', 'evaluate', str(headless), '--gt-dir',
                           str(tmp_path)], capture_output=True, text=True)
    assert proc.returncode == 2 and 'r.txt: no "scene:" header line' in proc.stderr
