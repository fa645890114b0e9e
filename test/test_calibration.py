"""Calibration: the packaged OpenLORIS values agree with the dataset's file; lookups and errors."""
import numpy as np
import pytest
import yaml

from rapnet_loc.errors import CalibrationError
from rapnet_loc.geometry import invert, pose_matrix
from rapnet_loc.io.calibration import Calibration


def test_packaged_calibration_matches_the_dataset_file(shared_data):
    ours = Calibration.load()
    theirs = Calibration.load(shared_data / 'openloris' / 'calibration.yaml')
    assert ours.scenes == theirs.scenes
    assert ours.ate_thresholds == theirs.ate_thresholds and ours.aoe_threshold_deg == theirs.aoe_threshold_deg
    assert ours.color.width == 848 and np.allclose(ours.color.K, theirs.color.K)
    for robot, table in theirs.transforms.items():
        for (parent, child), pose in table.items():
            scene = next(s for s, r in theirs.scenes.items() if r == robot)
            # direct entries are identical, reverse ones are inverses (to the dataset's 1e-6 rounding)
            np.testing.assert_allclose(ours.transform(scene, parent, child), pose, atol=2e-6)


def test_lookup_directions_and_identity():
    calib = Calibration.load()
    t = calib.transform('home', 'base_link', 'd400_color')
    assert t[2, 3] == pytest.approx(0.916)                        # camera 0.916 m above the floor
    np.testing.assert_allclose(calib.transform('home', 'd400_color', 'base_link'), invert(t))
    np.testing.assert_array_equal(calib.transform('market', 'odom', 'odom'), np.eye(4))
    assert calib.robot('market') == 'gaussian' and calib.ate_threshold('corridor') == 5.0


def test_errors_name_scene_frame_and_file(tmp_path):
    calib = Calibration.load()
    with pytest.raises(CalibrationError, match=r"unknown scene 'garage'.*known scenes: cafe, corridor"):
        calib.transform('garage', 'base_link', 'd400_color')
    with pytest.raises(CalibrationError, match=r"frames 'base_link' and 'velodyne' for scene 'home'"):
        calib.transform('home', 'base_link', 'velodyne')
    bad = tmp_path / 'calib.yaml'
    bad.write_text('scenes: [unclosed\n')
    with pytest.raises(CalibrationError, match='calib.yaml is not valid YAML'):
        Calibration.load(bad)
    bad.write_text(yaml.safe_dump({'scenes': {'x': 'r'}, 'robots': {'r': [{'parent': 'a', 'child': 'b'}]}}))
    with pytest.raises(CalibrationError, match="malformed calibration .*KeyError: 'translation'"):
        Calibration.load(bad)
    with pytest.raises(CalibrationError, match='cannot read calibration file'):
        Calibration.load(tmp_path / 'missing.yaml')


def test_custom_calibration_round_trip(tmp_path):
    path = tmp_path / 'c.yaml'
    path.write_text(yaml.safe_dump({
        'scenes': {'lab': 'bot'},
        'robots': {'bot': [{'parent': 'base_link', 'child': 'cam', 'translation': [0.1, 0, 1.0],
                            'rotation_xyzw': [0, 0, 0, 1]}]},
        'evaluation_thresholds': {'ate_m': {'lab': 0.5}}}))
    calib = Calibration.load(path)
    np.testing.assert_allclose(calib.transform('lab', 'base_link', 'cam'), pose_matrix([0.1, 0, 1.0], [0, 0, 0, 1]))
    assert calib.ate_threshold('lab') == 0.5 and calib.color is None
