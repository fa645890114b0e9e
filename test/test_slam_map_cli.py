"""``rapnet-loc build-map``, ``rapnet-loc localize`` and ``replay --map-in/--map-out`` on a 7-Scenes subset."""
import argparse
import json

import numpy as np
import pytest

from rapnet_loc.cli import build_map, localize, replay
from rapnet_loc.errors import ConfigError, MapFormatError
from rapnet_loc.geometry import rotation_angle
from rapnet_loc.io.sevenscenes import SevenScenesFolder
from rapnet_loc.io.trajectory import read_tum
from rapnet_loc.slam.map_io import load_map


@pytest.fixture(scope='module')
def redkitchen(shared_data):
    return shared_data / '7scenes-redkitchen-seq01-dev'


def cli_args(module, name, *argv):
    parser = argparse.ArgumentParser()
    module.add_parser(parser.add_subparsers())
    return parser.parse_args([name, *map(str, argv)])


@pytest.fixture(scope='module')
def built(redkitchen, tmp_path_factory):
    path = tmp_path_factory.mktemp('map') / 'redkitchen.map'
    assert build_map.run(cli_args(build_map, 'build-map', redkitchen, '--poses', 'gt', '--frames', '0:79',
                                  '--out', path)) == 0
    return path


def test_build_map_from_ground_truth_poses(redkitchen, built, capsys):
    loaded = load_map(built, 'orb')
    slam_map = loaded.map
    assert 3 <= len(slam_map.keyframes) <= 20 and len(slam_map.points) > 2000
    stamps, poses = SevenScenesFolder(redkitchen, 0, 79).poses()
    for kf in slam_map.keyframes.values():
        assert 0 <= kf.frame.id <= 79 and kf.frame.stamp_ns == stamps[kf.frame.id]
        assert np.allclose(kf.T_wc, poses[kf.frame.id], atol=1e-3), 'the poses (orthonormalised)'
    assert slam_map.keyframes[0].frame.id == 0
    every = built.parent / 'every.map'
    build_map.run(cli_args(build_map, 'build-map', redkitchen, '--poses', 'gt', '--frames', '10:39', '--kf-every',
                           '10', '--kf-translation', '9', '--kf-rotation', '180', '--out', every))
    assert [kf.frame.id for kf in load_map(every).map.keyframes.values()] == [10, 20, 30]
    assert 'map of 3 keyframes' in capsys.readouterr().out


def test_localize_each_frame_against_the_map(redkitchen, built, tmp_path, capsys):
    out = tmp_path / 'loc.tum'
    assert localize.run(cli_args(localize, 'localize', built, redkitchen, '--frames', '80:109', '--out', out)) == 0
    traj = read_tum(out)
    stdout = capsys.readouterr().out
    assert f'localized {len(traj)}/30 frames, {30 - len(traj)} failed' in stdout
    assert len(traj) >= 25
    stamps, poses = SevenScenesFolder(redkitchen, 80, 109).poses()
    gt = dict(zip(stamps.tolist(), poses))
    ref = np.array([gt[s] for s in traj.stamps_ns.tolist()])
    t_err = np.linalg.norm(traj.matrices[:, :3, 3] - ref[:, :3, 3], axis=1)
    r_err = np.degrees(rotation_angle(np.swapaxes(ref[:, :3, :3], 1, 2) @ traj.matrices[:, :3, :3]))
    assert np.median(t_err) < 0.05 and np.median(r_err) < 2.0
    assert np.all(np.diff(traj.stamps_ns) > 0)


def test_replay_in_localization_mode(redkitchen, built, tmp_path):
    out, saved = tmp_path / 'out', tmp_path / 'again.map'
    assert replay.run(cli_args(replay, 'replay', redkitchen, '--frames', '80:99', '--map-in', built,
                               '--map-out', saved, '--out', out)) == 0
    states = [line.split(',')[1] for line in (out / 'status.csv').read_text().splitlines()[1:]]
    assert states[0] == 'relocalized' and states.count('lost') <= 2
    report = json.loads((out / 'report.json').read_text())
    assert report['keyframes'] == 0 and report['ate']['ate_rmse'] < 0.05
    assert len(load_map(saved).map.keyframes) == len(load_map(built).map.keyframes)


def test_replay_saves_its_slam_map(redkitchen, tmp_path):
    saved = tmp_path / 'slam.map'
    assert replay.run(cli_args(replay, 'replay', redkitchen, '--frames', '0:9', '--map-out', saved,
                               '--out', tmp_path / 'out')) == 0
    slam_map = load_map(saved).map
    assert len(slam_map.keyframes) >= 1 and np.allclose(slam_map.keyframes[0].T_cw, np.eye(4))


def test_errors(redkitchen, built, tmp_path):
    with pytest.raises(MapFormatError, match="built with feature extractor 'orb', not 'sift'"):
        localize.run(cli_args(localize, 'localize', built, redkitchen, '--features', 'sift', '--out',
                              tmp_path / 'x.tum'))
    with pytest.raises(MapFormatError, match="built with feature extractor 'orb', not 'sift'"):
        replay.run(cli_args(replay, 'replay', redkitchen, '--features', 'sift', '--map-in', built, '--out',
                            tmp_path))
    with pytest.raises(MapFormatError, match='map file not found'):
        localize.run(cli_args(localize, 'localize', tmp_path / 'none.map', redkitchen, '--out', tmp_path / 'x.tum'))
    with pytest.raises(ConfigError, match='FIRST:LAST'):
        build_map.run(cli_args(build_map, 'build-map', redkitchen, '--poses', 'gt', '--frames', 'x', '--out',
                               tmp_path / 'm.map'))
    with pytest.raises(SystemExit):
        cli_args(build_map, 'build-map', redkitchen, '--poses', 'slam', '--out', tmp_path / 'm.map')
    assert not (tmp_path / 'm.map').exists() and not (tmp_path / 'x.tum').exists()
