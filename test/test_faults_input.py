"""Faults of issue P11 at the input: each ends in a clear message (exit 2, no traceback) or in valid output.

Covered here: an empty frame folder, an unsorted TUM file, out-of-range ORB options in a configuration.
"""
import numpy as np
import pytest

from rapnet_loc.cli.main import main
from rapnet_loc.errors import ConfigError
from rapnet_loc.eval.tum import tum_metrics
from rapnet_loc.features import create_extractor
from rapnet_loc.io.trajectory import Trajectory, read_tum, write_tum


def test_an_empty_folder_is_named_as_neither_frames_nor_a_bag(tmp_path, capsys):
    empty = tmp_path / 'frames'
    empty.mkdir()
    assert main(['replay', str(empty), '--out', str(tmp_path / 'out')]) == 2
    err = capsys.readouterr().err
    assert 'is neither a frame folder' in err and 'frame-NNNNNN.color' in err and 'Traceback' not in err


def test_a_tum_file_out_of_time_order_is_read_sorted(tmp_path):
    rng = np.random.default_rng(0)
    n = 40
    stamps = np.arange(n, dtype=np.int64) * 100_000_000 + 10**18
    positions = np.cumsum(rng.normal(0, 0.05, (n, 3)), axis=0)
    quats = np.tile([0.0, 0.0, 0.0, 1.0], (n, 1))
    ref = Trajectory(stamps, positions, quats)
    est = Trajectory(stamps, positions + rng.normal(0, 0.01, (n, 3)), quats)
    shuffled = rng.permutation(n)
    write_tum(tmp_path / 'ordered.tum', est)
    write_tum(tmp_path / 'shuffled.tum', Trajectory(stamps[shuffled], est.positions[shuffled], quats[shuffled]))
    read = read_tum(tmp_path / 'shuffled.tum')
    assert np.array_equal(read.stamps_ns, stamps)
    ordered, unordered = (tum_metrics(read_tum(tmp_path / name), ref) for name in ('ordered.tum', 'shuffled.tum'))
    assert unordered.rpe_trans_rmse == ordered.rpe_trans_rmse and unordered.ate_rmse == ordered.ate_rmse


@pytest.mark.parametrize('conf, message', [({'max_keypoints': -5}, 'max_keypoints must be an integer >= 0'),
                                           ({'fast_threshold': 0}, 'fast_threshold must be an integer >= 1'),
                                           ({'grid_cell': 2.5}, 'grid_cell must be an integer'),
                                           ({'oversample': 0.5}, 'oversample must be a number >= 1')])
def test_orb_options_out_of_range_are_refused(conf, message):
    with pytest.raises(ConfigError, match=message):
        create_extractor('orb', conf)


def test_a_configuration_with_a_negative_keypoint_count_fails_before_any_frame(shared_data, tmp_path, capsys):
    config = tmp_path / 'bad.yaml'
    config.write_text('features: {name: orb, conf: {max_keypoints: -5}}\n')
    frames = shared_data / '7scenes-redkitchen-seq01-dev'
    assert main(['replay', str(frames), '--frames', '0:2', '--config', str(config), '--out', str(tmp_path / 'o')]) == 2
    err = capsys.readouterr().err
    assert 'ORB max_keypoints must be an integer >= 0, got -5' in err and 'Traceback' not in err
    assert not (tmp_path / 'o' / 'trajectory.tum').exists()


@pytest.mark.parametrize('line, message', [
    ('1.0 0 0 0 0 0 0 1\n2.0 nan 0 0 0 0 0 1\n', 'NaN in line'),
    ('1.0 0 0 0 0 0 0 1\n2.0 inf 0 0 0 0 0 1\n', 'infinite value'),
    ('1.0 0 0 0 0 0 0 1\n2.0 0 0 0 0 0 0 0\n', 'zero-norm quaternion'),
    ('1.0 0 0 0 0 0 0 1\n1e300 0 0 0 0 0 0 1\n', 'timestamp out of range'),
])
def test_bad_values_in_a_tum_file_are_named_with_their_line(tmp_path, capsys, line, message):
    est = tmp_path / 'est.tum'
    est.write_text(line)
    assert main(['evaluate', str(est), '--tum-gt', str(est)]) == 2
    err = capsys.readouterr().err
    assert message in err and f'{est}:2' in err and 'Traceback' not in err


def test_build_map_leaves_out_a_nan_pose_and_writes_a_finite_map(shared_data, tmp_path, caplog):
    import shutil

    from rapnet_loc.slam.map_io import load_map

    folder = tmp_path / 'frames'
    folder.mkdir()
    source = shared_data / '7scenes-redkitchen-seq01-dev'
    for path in source.glob('frame-00000[0-5].*'):
        shutil.copy(path, folder)
    for extra in source.glob('*intrinsics*'):
        shutil.copy(extra, folder)
    (folder / 'frame-000003.pose.txt').write_text('nan 0 0 0\n0 1 0 0\n0 0 1 0\n0 0 0 1\n')
    assert main(['build-map', str(folder), '--poses', 'gt', '--out', str(tmp_path / 'k.map')]) == 0
    assert '1 ground-truth pose(s) with NaN or infinite values left out' in caplog.text
    slam_map = load_map(tmp_path / 'k.map').map
    assert all(np.isfinite(kf.T_cw).all() for kf in slam_map.keyframes.values())


def test_a_map_with_a_nan_pose_is_never_written_and_never_loaded(office_mapped, tmp_path):
    from rapnet_loc.errors import MapFormatError
    from rapnet_loc.io.npz import read_npz, write_npz
    from rapnet_loc.slam.map_io import load_map

    system, _ = office_mapped
    good = tmp_path / 'good.map'
    system.save_map(good)
    kf = next(iter(system.map.keyframes.values()))
    saved = kf.T_cw.copy()
    kf.T_cw[0, 3] = np.nan
    try:
        with pytest.raises(MapFormatError, match='NaN or infinite pose'):
            system.save_map(tmp_path / 'bad.map')
    finally:
        kf.T_cw[:] = saved
    assert not (tmp_path / 'bad.map').exists()
    arrays = dict(read_npz(good))
    arrays['kf_T_cw'] = arrays['kf_T_cw'].copy()
    arrays['kf_T_cw'][0, 0, 3] = np.inf
    with open(tmp_path / 'tampered.map', 'wb') as fh:
        write_npz(fh, arrays)
    with pytest.raises(MapFormatError, match='NaN or infinite'):
        load_map(tmp_path / 'tampered.map')


@pytest.mark.parametrize('yaml, message', [
    ('tracking: [1, 2]\n', r'\[tracking\] must be a mapping of settings'),
    ('tracking: 5\n', r'\[tracking\] must be a mapping of settings'),
    ('features: orb\n', r'\[features\] must be a mapping \{name: NAME'),
    ('tracking: {depth_max: .nan}\n', 'depth_max must be finite and >= 0, got nan'),
    ('tracking: {depth_max: -1}\n', 'depth_max must be finite and >= 0, got -1'),
    ('tracking: {bf: .inf}\n', 'bf must be finite and >= 0, got inf'),
    ('tracking: {init_min_points: 3.7}\n', 'init_min_points must be a whole number, got 3.7'),
    ('local_mapping: {ba_window: -3}\n', 'ba_window must be finite and >= 0, got -3'),
    ("tracking: {bf: '40'}\n", "bf must be a number, got '40'"),
    ('tracking: {strict_distance: {l2: .inf}}\n', 'strict_distance.l2 must be finite'),
    ('local_mapping: {cull_keyframes: 1}\n', 'cull_keyframes must be true or false'),
])
def test_configuration_values_are_type_and_range_checked_on_load(tmp_path, yaml, message):
    from rapnet_loc.slam.config import SlamConfig

    path = tmp_path / 'config.yaml'
    path.write_text(yaml)
    with pytest.raises(ConfigError, match=message):
        SlamConfig.load(path)


def test_a_bad_configuration_value_is_a_clear_cli_error(tmp_path, capsys):
    path = tmp_path / 'config.yaml'
    path.write_text('tracking: {depth_max: -1}\n')
    (tmp_path / 'frames').mkdir()
    assert main(['replay', str(tmp_path / 'frames'), '--config', str(path), '--out', str(tmp_path / 'o')]) == 2
    err = capsys.readouterr().err
    assert 'depth_max must be finite and >= 0, got -1' in err and str(path) in err and 'Traceback' not in err
