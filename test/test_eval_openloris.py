"""OpenLORIS evaluator: reproduces the official numbers, and behaves as defined on constructed trajectories."""
import json
import math

import numpy as np
import pytest

from rapnet_loc.errors import CalibrationError, TrajectoryFormatError
from rapnet_loc.eval.openloris import Thresholds, align_points, evaluate_file, evaluate_result
from rapnet_loc.geometry import pose_matrix, yaw_quat
from rapnet_loc.io.calibration import Calibration
from rapnet_loc.io.trajectory import OpenLORISResult, Trajectory, write_openloris

NS = 10**9


def _assert_same_metrics(got: dict, exp: dict, where: str) -> None:
    for key in ('scene', 'frame', 'ate_threshold', 'aoe_threshold', 'scale'):
        assert got[key] == exp[key], f'{where}: {key}'
    assert set(got['sequences']) == set(exp['sequences']), where
    for seq, metrics in exp['sequences'].items():
        for key, value in metrics.items():
            mine = got['sequences'][seq][key]
            if value is None:
                assert mine is None, f'{where} seq {seq} {key}: {mine} instead of null'
            else:
                assert mine is not None, f'{where} seq {seq} {key}: null instead of {value}'
                assert abs(mine - value) <= 1e-6 * abs(value), f'{where} seq {seq} {key}: {mine} vs {value}'


def test_reproduces_official_metrics_on_every_published_result(shared_data):
    root = shared_data / 'openloris'
    official = json.loads((root / 'official-metrics-dev.json').read_text())
    files = sorted(p.relative_to(root / 'results-dev').as_posix() for p in (root / 'results-dev').rglob('*.txt'))
    assert files == sorted(official), 'every result file has official metrics'
    for rel in files:
        _assert_same_metrics(evaluate_file(root / 'results-dev' / rel, root).summary(), official[rel], rel)


# --- constructed cases -------------------------------------------------------------------------------------

def _circle(t0_s: float, n: int, hz: float = 10.0, radius: float = 2.0) -> Trajectory:
    """Planar circular drive of base_link: (n,) stamps from t0_s at hz."""
    t = np.arange(n) / hz
    yaw = 0.3 * t
    xyz = np.stack([radius * np.cos(yaw), radius * np.sin(yaw), np.zeros(n)], axis=1)
    stamps = np.array([int(round(t0_s * NS)) + int(round(x * NS)) for x in t], dtype=np.int64)
    return Trajectory(stamps, xyz, yaw_quat(yaw + np.pi / 2))


def _moved(traj: Trajectory, transform: np.ndarray) -> Trajectory:
    return Trajectory.from_matrices(traj.stamps_ns, transform @ traj.matrices)


@pytest.fixture
def gt_dir(tmp_path):
    gt = OpenLORISResult({'scene': 'home', 'frame': 'base_link'},
                         {1: _circle(100.0, 300), 2: _circle(200.0, 300)})
    write_openloris(tmp_path / 'gt_home_1.txt', gt)
    return tmp_path


def _write_result(path, sequences, frame='base_link', scene='home'):
    write_openloris(path, OpenLORISResult({'scene': scene, 'frame': frame}, sequences))
    return path


def test_perfect_estimate_in_another_world_frame_is_aligned_and_fully_correct(gt_dir):
    world = pose_matrix([5.0, -3.0, 0.2], yaw_quat(1.1))
    gt1 = _circle(100.0, 300)
    path = _write_result(gt_dir / 'r.txt', {1: _moved(gt1, world)})
    ev = evaluate_file(path, gt_dir, exact_slerp=True)
    s = ev.sequences[1]
    assert s.matches == 300 and s.poses == 300
    assert s.ate_rmse < 1e-6 and s.aoe_rmse < 1e-4
    # correct time: every pose credited 0.1 s except the last (sequence ends at the last stamp)
    assert s.correct_time == pytest.approx(29.9, abs=1e-6)
    assert s.correct_rate == pytest.approx(1.0, abs=1e-6)
    assert s.reloc_score == pytest.approx(1.0)
    np.testing.assert_allclose(ev.alignment, np.linalg.inv(world), atol=1e-6)


def test_later_sequences_use_the_first_alignment_and_late_start_lowers_reloc_score(gt_dir):
    world = pose_matrix([1.0, 2.0, 0.0], yaw_quat(0.4))
    seq2 = _circle(200.0, 300).subset(np.arange(60, 300))     # starts 6 s late
    seq2_shifted = Trajectory(seq2.stamps_ns, seq2.positions + [0.5, 0.0, 0.0], seq2.quats)
    path = _write_result(gt_dir / 'r.txt', {1: _moved(_circle(100.0, 300), world), 2: _moved(seq2_shifted, world)})
    ev = evaluate_file(path, gt_dir, ate_threshold=0.4)
    s2 = ev.sequences[2]
    # not re-aligned: the 0.5 m offset stays and exceeds the 0.4 m threshold
    assert s2.ate_rmse == pytest.approx(0.5, abs=1e-6)
    assert s2.correct_rate == 0 and s2.reloc_score == 0
    ev = evaluate_file(path, gt_dir, ate_threshold=0.6)
    s2 = ev.sequences[2]
    assert s2.reloc_time == pytest.approx(6.0, abs=1e-6)
    assert s2.reloc_score == pytest.approx(math.exp(-6.0 / 60.0), rel=1e-9)
    assert s2.correct_time == pytest.approx(23.9, abs=1e-6)
    assert s2.correct_rate == pytest.approx(23.9 / 29.9, rel=1e-9)


def test_official_slerp_quirk_is_reproduced_and_exact_slerp_removes_it(gt_dir):
    # Estimates stamped exactly on ground-truth samples: the official slerp (swapped sine weights) returns the
    # neighbouring sample's orientation whenever it leaves its linear branch, i.e. one 0.03 rad step off.
    gt1 = _circle(100.0, 300)
    path = _write_result(gt_dir / 'r.txt', {1: gt1})
    official = evaluate_file(path, gt_dir).sequences[1].aoe_deg
    step = np.degrees(0.03)
    assert np.all(np.isclose(official, 0.0, atol=1e-6) | np.isclose(official, step, atol=1e-6))
    assert np.sum(np.isclose(official, step, atol=1e-6)) > 50 and np.sum(official < 1e-6) > 50
    assert np.max(evaluate_file(path, gt_dir, exact_slerp=True).sequences[1].aoe_deg) < 1e-6


def test_gaps_longer_than_max_pose_interval_are_credited_one_second(gt_dir):
    gt1 = _circle(100.0, 300)
    keep = np.r_[0:100, 150:300]                                   # a 5 s hole after pose 99
    ev = evaluate_file(_write_result(gt_dir / 'r.txt', {1: gt1.subset(keep)}), gt_dir)
    assert ev.sequences[1].correct_time == pytest.approx(9.9 + 1.0 + 14.9, abs=1e-6)
    ev = evaluate_file(gt_dir / 'r.txt', gt_dir, max_pose_interval=10.0, reloc_score_factor=30.0)
    assert ev.sequences[1].correct_time == pytest.approx(29.9, abs=1e-6)
    assert ev.thresholds.reloc_score_factor_s == 30.0


def test_orientation_error_and_threshold(gt_dir):
    gt1 = _circle(100.0, 300)
    tilted = Trajectory(gt1.stamps_ns, gt1.positions, yaw_quat(np.arctan2(gt1.quats[:, 2], gt1.quats[:, 3]) * 2
                                                              + np.radians(40.0)))
    ev = evaluate_file(_write_result(gt_dir / 'r.txt', {1: tilted}), gt_dir, exact_slerp=True)
    s = ev.sequences[1]
    assert s.aoe_rmse == pytest.approx(40.0, abs=1e-6)
    assert s.correct_rate == 0.0 and math.isnan(s.c_ate_rmse)
    ev = evaluate_file(_write_result(gt_dir / 'r.txt', {1: tilted}), gt_dir, aoe_threshold=45.0, exact_slerp=True)
    assert ev.sequences[1].correct_rate == pytest.approx(1.0, abs=1e-6)


def test_result_in_camera_frame_is_compared_with_ground_truth_moved_to_that_frame(gt_dir):
    calib = Calibration.load()
    cam = calib.transform('home', 'base_link', 'd400_color')
    gt1 = _circle(100.0, 300)
    est = Trajectory.from_matrices(gt1.stamps_ns, gt1.matrices @ cam)
    ev = evaluate_file(_write_result(gt_dir / 'r.txt', {1: est}, frame='d400_color'), gt_dir, exact_slerp=True)
    assert ev.sequences[1].ate_rmse < 1e-6 and ev.sequences[1].aoe_rmse < 1e-4
    # the same poses declared as base_link are ~0.23 m and 90+ degrees off
    ev = evaluate_file(_write_result(gt_dir / 'r.txt', {1: est}), gt_dir)
    assert ev.sequences[1].aoe_rmse > 80


def test_scale_alignment_recovers_a_scaled_trajectory():
    rng = np.random.default_rng(0)
    model = rng.normal(size=(50, 3))
    rot = pose_matrix([0, 0, 0], [0.1, 0.2, 0.3, 0.9])[:3, :3]
    data = 2.5 * model @ rot.T + [1.0, -2.0, 0.5]
    r, t, s = align_points(model, data, with_scale=True)
    assert s == pytest.approx(2.5) and np.allclose(r, rot) and np.allclose(t, [1.0, -2.0, 0.5])
    r, t, s = align_points(model, data, with_scale=False)
    assert s == 1.0 and np.allclose(r, rot, atol=1e-9)


def test_repeated_poses_are_removed_by_default(gt_dir):
    gt1 = _circle(100.0, 300)
    frozen = Trajectory(gt1.stamps_ns, np.repeat(gt1.positions[:1], 300, 0), np.repeat(gt1.quats[:1], 300, 0))
    path = _write_result(gt_dir / 'r.txt', {1: frozen})
    assert evaluate_file(path, gt_dir).sequences[1].poses == 1
    assert evaluate_file(path, gt_dir, remove_repeated=False).sequences[1].poses == 300


# --- bad input ---------------------------------------------------------------------------------------------

def test_unknown_scene_names_the_scene(gt_dir):
    path = _write_result(gt_dir / 'r.txt', {1: _circle(100.0, 10)}, scene='garage')
    with pytest.raises(CalibrationError, match="garage"):
        evaluate_file(path, gt_dir)


def test_unknown_frame_names_the_frame(gt_dir):
    path = _write_result(gt_dir / 'r.txt', {1: _circle(100.0, 10)}, frame='lidar_top')
    with pytest.raises(CalibrationError, match="lidar_top"):
        evaluate_file(path, gt_dir)


def test_malformed_line_names_file_and_line(gt_dir):
    path = gt_dir / 'bad.txt'
    path.write_text('scene: home\nframe: base_link\nseq: 1\n100.0 1 2 3 0 0 0\n')
    with pytest.raises(TrajectoryFormatError, match=r'bad\.txt:4: expected 8 or 9 columns, got 7'):
        evaluate_file(path, gt_dir)
    path.write_text('scene: home\nframe: base_link\nseq: 1\n100.0 1 2 x 0 0 0 1\n')
    with pytest.raises(TrajectoryFormatError, match=r'bad\.txt:4'):
        evaluate_file(path, gt_dir)


def test_missing_headers_and_sequences(gt_dir):
    path = gt_dir / 'bad.txt'
    path.write_text('frame: base_link\nseq: 1\n100.0 1 2 3 0 0 0 1\n')
    with pytest.raises(TrajectoryFormatError, match='no "scene:" header'):
        evaluate_file(path, gt_dir)
    path.write_text('scene: home\nseq: 1\n100.0 1 2 3 0 0 0 1\n')
    with pytest.raises(TrajectoryFormatError, match='no "frame:" header'):
        evaluate_file(path, gt_dir)
    path = _write_result(gt_dir / 'r.txt', {7: _circle(100.0, 10)})
    with pytest.raises(TrajectoryFormatError, match=r'sequence\(s\) \[7\]'):
        evaluate_file(path, gt_dir)


def test_evaluate_result_without_any_match_reports_nothing_correct():
    gt = OpenLORISResult({'scene': 'home', 'frame': 'base_link'}, {1: _circle(100.0, 50), 2: _circle(200.0, 50)})
    res = OpenLORISResult({'scene': 'home', 'frame': 'base_link'}, {1: _circle(500.0, 5), 2: _circle(600.0, 5)})
    ev = evaluate_result(res, gt, Calibration.load(), Thresholds(ate_m=3.0))
    for k in (1, 2):
        assert ev.sequences[k].matches == 0 and ev.sequences[k].correct_rate == 0
    assert ev.summary()['sequences']['1']['ate_rmse'] is None
    # the official script reports one zero-error match for a later sequence without matches
    assert ev.summary()['sequences']['2']['matches'] == 1 and ev.summary()['sequences']['2']['ate_rmse'] == 0.0


def test_a_repeated_stamp_keeps_its_last_pose(gt_dir):
    gt1 = _circle(100.0, 300)
    doubled = Trajectory(np.r_[gt1.stamps_ns, gt1.stamps_ns[50]], np.r_[gt1.positions, [[9.0, 9.0, 0.0]]],
                         np.r_[gt1.quats, gt1.quats[50:51]])
    ev = evaluate_file(_write_result(gt_dir / 'r.txt', {1: doubled}), gt_dir, exact_slerp=True)
    s = ev.sequences[1]
    assert s.poses == 300 and s.matches == 300
    assert np.sum(s.ate > 1.0) == 1            # the later (wrong) pose replaced the correct one at that stamp
