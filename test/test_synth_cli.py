"""The ``rapnet-loc synth`` contract: file names, ground-truth blocks, calibration.yaml, switches, errors, and the
7-Scenes-style frame folder (``--frames-folder``) that ``replay`` reads with its own colour intrinsics."""
from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from rapnet_loc.cli import synth as synth_cli
from rapnet_loc.cli.main import build_parser, main
from rapnet_loc.io.calibration import Calibration
from rapnet_loc.io.openloris import OpenLORISBag
from rapnet_loc.io.source import open_source
from rapnet_loc.io.trajectory import read_openloris, read_tum
from rapnet_loc.slam.map_io import load_map
from rapnet_loc.synth import Challenges
from rapnet_loc.synth.camera import camera_for_size

SMALL = ['--frames', '5', '--width', '160', '--height', '120', '--compression', 'none', '--no-progress']


def test_cli_writes_bags_ground_truth_and_calibration(tmp_path, capsys):
    out = tmp_path / 'synth'
    assert main(['synth', '--out', str(out), '--scene', 'market', '--sequences', '3', '--seed', '4', *SMALL]) == 0
    assert sorted(p.name for p in out.iterdir()) == \
        ['calibration.yaml', 'gt_market_1.txt', 'market1-1.bag', 'market1-2.bag', 'market1-3.bag']
    printed = capsys.readouterr().out.split()
    assert printed == [str(out / f'market1-{k}.bag') for k in (1, 2, 3)] + \
        [str(out / 'gt_market_1.txt'), str(out / 'calibration.yaml')]

    text = (out / 'gt_market_1.txt').read_text()
    assert text.startswith('scene: market\nframe: base_link\n')
    assert [line for line in text.splitlines() if line.startswith('seq:')] == ['seq: 1', 'seq: 2', 'seq: 3']
    stamp = text.splitlines()[4].split()[0]
    assert len(stamp.split('.')[1]) == 9                   # full nanosecond precision
    gt = read_openloris(out / 'gt_market_1.txt')
    assert (gt.scene, gt.frame) == ('market', 'base_link')
    for k in (1, 2, 3):
        with OpenLORISBag(out / f'market1-{k}.bag') as bag:
            stamps, poses = bag.ground_truth()
        assert gt.sequences[k].stamps_ns.tolist() == stamps.tolist()
        assert np.allclose(gt.sequences[k].positions, poses[:, :3, 3], atol=2e-9)
    starts = [gt.sequences[k].stamps_ns[0] for k in (1, 2, 3)]
    assert starts == sorted(starts) and len(set(starts)) == 3     # later sequences start later

    raw = yaml.safe_load((out / 'calibration.yaml').read_text())
    assert set(raw) >= {'scenes', 'robots', 'd400_color_intrinsics', 'depth_scale_m_per_unit', 'topics',
                        'evaluation_thresholds'}
    calib = Calibration.load(out / 'calibration.yaml')
    assert calib.robot('market') == 'gaussian' and calib.ate_threshold('market') == 5.0
    assert np.allclose(calib.color.K, camera_for_size(160, 120).K)
    official = Calibration.load()
    for parent, child in (('base_link', 'd400_color'), ('d400_color', 'base_link'), ('base_link', 'd400_depth'),
                          ('d400_depth', 'base_link')):
        assert np.allclose(calib.transforms['gaussian'][(parent, child)],
                           official.transform('market', parent, child), atol=1e-12)


def test_challenge_flags_map_onto_challenges():
    parser = build_parser()
    args = parser.parse_args(['synth', '--out', 'x', '--people', '0', '--no-motion-blur', '--no-moved-furniture',
                              '--illumination'])
    assert args.people == 0 and not args.motion_blur and not args.moved_furniture and args.illumination
    defaults = parser.parse_args(['synth', '--out', 'x'])
    assert (defaults.scene, defaults.sequences, defaults.frames, defaults.width, defaults.height, defaults.seed,
            defaults.compression) == ('home', 2, 300, 848, 480, 0, 'bz2')
    assert all(getattr(defaults, name) == getattr(Challenges(), name) for name in synth_cli._SWITCHES)


@pytest.mark.parametrize('extra, message', [
    (['--width', '0'], 'width'), (['--height', '-2'], 'height'), (['--scene', 'garage'], 'unknown synthetic scene'),
    (['--sequences', '0'], 'sequences'), (['--frames', '0'], 'frames'), (['--compression', 'zip'], 'compression'),
    (['--people', '-1'], 'people'),
])
def test_bad_arguments_exit_2_with_a_clear_message(tmp_path, capsys, extra, message):
    assert main(['synth', '--out', str(tmp_path / 'o'), *SMALL, *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith('rapnet-loc synth: error:') and message in err
    assert not (tmp_path / 'o').exists()


def test_frames_folder_and_its_colour_intrinsics_drive_replay(tmp_path):
    """``synth --frames-folder`` writes a 7-Scenes-style folder with ``color-intrinsics.txt`` (the synthetic
    camera's K, not 7-Scenes' 525); ``replay`` on it uses that K (the saved map's camera) and depth as aligned to
    colour, and tracks within 5 cm over the 30 frames (the path is straight: compared without alignment)."""
    folder = tmp_path / 'frames'
    assert main(['synth', '--out', str(tmp_path / 'bags'), '--frames-folder', str(folder), '--scene', 'office',
                 '--sequences', '1', '--frames', '30', '--width', '320', '--height', '240', '--seed', '2',
                 '--no-challenges', '--compression', 'none', '--no-progress']) == 0
    K = np.loadtxt(folder / 'color-intrinsics.txt')
    assert K[0, 0] != 525.0 and len(list(folder.glob('frame-*.color.png'))) == 30
    with open_source(folder) as source:
        assert np.array_equal(source.camera.K, K) and source.depth_camera is None
    out, map_path = tmp_path / 'out', tmp_path / 'folder.map'
    assert main(['replay', str(folder), '--out', str(out), '--map-out', str(map_path)]) == 0
    assert np.array_equal(load_map(map_path).camera.K, K)
    assert json.loads((out / 'report.json').read_text())['tracked'] == 30
    traj = read_tum(out / 'trajectory.tum')
    with open_source(folder) as source:
        _, gt = source.ground_truth()
    error = np.linalg.norm(traj.matrices[:, :3, 3] - (np.linalg.inv(gt[0]) @ gt)[:, :3, 3], axis=1)
    assert error.max() < 0.05, 'the map starts at the first camera; with 7-Scenes\' K the error reaches 20 cm'
    names = {kf.frame.name for kf in load_map(map_path).map.keyframes.values()}
    assert 'frame-000000' in names and names <= {f'frame-{i:06d}' for i in range(30)}
