"""Synthetic robot paths drive like OpenLORIS robots (``rapnet_loc.synth.path``): ``loop`` paths turn
within a 300-frame sequence, close loops and revisit their start in longer ones, and keep clear of obstacles in
every scene; a camera path along a line is reported, since the OpenLORIS alignment cannot fix its rotation."""
from __future__ import annotations

import logging

import numpy as np
import pytest

from rapnet_loc.errors import ConfigError
from rapnet_loc.synth import Challenges, generate
from rapnet_loc.synth.generate import ILL_POSED_SPREAD, path_spread
from rapnet_loc.synth.path import plan_trajectory
from rapnet_loc.synth.robot import Robot
from rapnet_loc.synth.scenes import SCENES, scene_spec
from rapnet_loc.synth.world import FreeSpace

FPS = 30.0


def free_space(scene: str) -> FreeSpace:
    spec = scene_spec(scene, Challenges())
    return FreeSpace.of(spec.room, spec.things)


def positions(trajectory, frames: int) -> np.ndarray:
    return trajectory.sample(np.arange(frames) / FPS)[0]


@pytest.mark.parametrize('scene', list(SCENES))
def test_loop_paths_turn_within_300_frames_in_every_scene(scene):
    free, clearance = free_space(scene), Robot.for_scene(scene).clearance_m
    for seed in range(3):
        trajectory = plan_trajectory(free, clearance, 299 / FPS, np.random.default_rng(seed), style='loop')
        xy, yaw, _, _ = trajectory.sample(np.arange(300) / FPS)
        assert path_spread(xy) > 2 * ILL_POSED_SPREAD, (scene, seed)
        assert np.ptp(yaw) > np.deg2rad(60), (scene, seed)
        assert np.all(free.clearance(xy) >= clearance - 0.03)


@pytest.mark.parametrize('scene', ['office', 'corridor'])
def test_long_loop_paths_come_back_to_their_start(scene):
    free, clearance = free_space(scene), Robot.for_scene(scene).clearance_m
    trajectory = plan_trajectory(free, clearance, 60.0, np.random.default_rng(0), style='loop')
    t = np.arange(int(60 * FPS)) / FPS
    xy = positions(trajectory, len(t))
    away = np.linalg.norm(xy - xy[0], axis=1)
    assert away.max() > 1.0                                             # it drives somewhere ...
    returns = np.flatnonzero((away < 0.3) & (t > 5.0))
    assert len(returns) and t[returns[0]] < 30.0                        # ... and is back within 30 s
    assert np.all(free.clearance(xy) >= clearance - 0.03)


def test_a_revisit_starts_on_the_given_pose():
    free, clearance = free_space('home'), Robot.for_scene('home').clearance_m
    first = plan_trajectory(free, clearance, 10.0, np.random.default_rng(1), style='loop')
    xy, yaw, _, _ = first.sample(np.array([4.0]))
    second = plan_trajectory(free, clearance, 10.0, np.random.default_rng(2), (xy[0], float(yaw[0])), 'loop')
    assert np.allclose(second.xy[0], xy[0])


def test_explore_paths_are_nearly_straight_in_10_s():
    free, clearance = free_space('cafe'), Robot.for_scene('cafe').clearance_m
    xy = positions(plan_trajectory(free, clearance, 10.0, np.random.default_rng(0), style='explore'), 300)
    assert path_spread(xy) < ILL_POSED_SPREAD


def test_path_spread_of_a_line_and_of_a_square():
    line = np.column_stack([np.linspace(0, 3, 50), 2 * np.linspace(0, 3, 50), np.ones(50)])
    assert path_spread(line) < 1e-9
    square = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]], float)
    assert path_spread(square) == pytest.approx(1.0)


def test_generate_warns_about_a_straight_path_and_refuses_an_unknown_style(tmp_path, caplog):
    kwargs = dict(scene='cafe', sequences=1, frames=60, width=64, height=48, compression='none', progress=False,
                  challenges=Challenges.none())
    with caplog.at_level(logging.WARNING, logger='rapnet_loc.synth.generate'):
        generate(tmp_path / 'explore', **kwargs)              # the default style
    assert any('nearly a straight line' in r.getMessage() for r in caplog.records)
    with pytest.raises(ConfigError, match='unknown robot path style'):
        generate(tmp_path / 'bad', path='zigzag', **kwargs)


def test_cli_drives_the_chosen_path(tmp_path, capsys):
    from rapnet_loc.cli.main import main
    from rapnet_loc.io.trajectory import read_openloris

    small = ['--scene', 'home', '--frames', '150', '--width', '64', '--height', '48', '--compression', 'none',
             '--no-progress', '--no-challenges']
    spreads = {}
    for style in ('explore', 'loop'):
        assert main(['synth', '--out', str(tmp_path / style), '--path', style, *small]) == 0
        gt = read_openloris(tmp_path / style / 'gt_home_1.txt').sequences[1]
        spreads[style] = path_spread(gt.positions)
    assert spreads['loop'] > spreads['explore']
    with pytest.raises(SystemExit) as exc:
        main(['synth', '--out', str(tmp_path / 'bad'), '--path', 'zigzag', *small])
    assert exc.value.code == 2 and "invalid choice: 'zigzag'" in capsys.readouterr().err
