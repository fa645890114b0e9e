"""The shipped RaP-Net weights (models/): found with no options, small enough, trained, and better than random."""
from pathlib import Path

import numpy as np
import pytest

from rapnet_loc.io.source import open_source
from rapnet_loc.eval.tum import tum_metrics
from rapnet_loc.features import create_extractor
from rapnet_loc.features.matching import match_mutual
from rapnet_loc.io.sevenscenes import SevenScenesFolder
from rapnet_loc.io.trajectory import Trajectory
from rapnet_loc.rapnet.data import register_depth, reproject
from rapnet_loc.rapnet.export import export_onnx
from rapnet_loc.rapnet.weights import load_model, read_checkpoint
from rapnet_loc.slam import SlamConfig, System

MAX_SHIPPED_BYTES = 25 * 2**20


@pytest.fixture(scope='module')
def shipped(repo_root):
    return repo_root / 'models' / 'rapnet_w025.pt'


def test_default_extractors_load_the_shipped_file(shipped):
    assert sum(p.stat().st_size for p in shipped.parent.iterdir()) <= MAX_SHIPPED_BYTES
    for name in ('rapnet', 'rapnet_p'):
        assert Path(create_extractor(name).runner.info.path) == shipped
    config = read_checkpoint(shipped)[1]
    assert config['width'] == 0.25 and config['preprocessing'] == 'torch'


def correct_matches(extractor, folder: SevenScenesFolder, first: int, second: int, pixels: float) -> int:
    """Mutual matches between two 7-Scenes frames that land within ``pixels`` of the ground-truth position."""
    frames = {f.index: f for f in folder if f.index in (first, second)}
    _, poses = folder.poses()
    a, b = (extractor.extract(frames[i].color) for i in (first, second))
    pairs, _ = match_mutual(a.descriptors, b.descriptors, 'l2', ratio=1.0)
    depth = register_depth(frames[first].depth, folder.K_depth, folder.K, (480, 640), 1.0)
    xy = a.keypoints[pairs[:, 0]].astype(np.float64)
    uv, z = reproject(xy, depth[np.rint(xy[:, 1]).astype(int), np.rint(xy[:, 0]).astype(int)], folder.K, folder.K,
                      poses[first - folder.indices[0]], poses[second - folder.indices[0]])
    return int(np.sum(np.linalg.norm(uv - b.keypoints[pairs[:, 1]], axis=1)[z > 0] <= pixels))


def test_shipped_weights_find_more_right_matches_on_held_out_frames_than_random_ones(shared_data):
    folder = SevenScenesFolder(shared_data / '7scenes-redkitchen-seq01-dev', 300, 310)
    trained = correct_matches(create_extractor('rapnet', {'max_edge': 320}), folder, 300, 310, 5.0)
    random = correct_matches(create_extractor('rapnet', {'max_edge': 320, 'random_init': True}), folder, 300, 310, 5.0)
    assert trained > 3 * random, (trained, random)


def test_onnx_export_of_the_shipped_weights_agrees_with_pytorch(shipped, shared_data, tmp_path):
    onnx = export_onnx(*load_model(shipped), tmp_path / 'rapnet_w025.onnx').path
    image = next(iter(SevenScenesFolder(shared_data / '7scenes-redkitchen-seq01-dev', 450, 450))).color
    for subpixel in (False, True):
        conf = {'max_edge': 160, 'subpixel': subpixel}
        t = create_extractor('rapnet', conf).extract(image)
        o = create_extractor('rapnet', {**conf, 'backend': 'onnx', 'weights': str(onnx)}).extract(image)
        assert len(t) > 10 and len(t) == len(o)
        if subpixel:    # offsets from F, which the two runtimes compute to ~1e-6
            assert np.abs(t.keypoints - o.keypoints).max() < 1e-3
        else:
            assert np.array_equal(t.keypoints, o.keypoints)
        assert np.abs(t.descriptors - o.descriptors).max() < 1e-4


def test_front_end_tracks_real_frames_with_the_shipped_weights(shared_data, repo_root):
    """RaP-Net swapped in for ORB (config/slam/sevenscenes_rapnet.yaml): the RGB-D front end follows 7-Scenes
    frames 0-24 within 1 cm."""
    source = open_source(shared_data / '7scenes-redkitchen-seq01-dev', (0, 24))
    config = SlamConfig.load(repo_root / 'config' / 'slam' / 'sevenscenes_rapnet.yaml')
    assert config.features == 'rapnet' and config.feature_conf == {'max_edge': 320}
    system = System(source.camera, config, depth_info=source.depth_camera)
    results = [system.process(frame) for frame in source.frames()]
    assert len(results) == 25 and all(r.state == 'ok' for r in results)
    stamps, poses = source.ground_truth()
    estimate = Trajectory.from_matrices([r.stamp_ns for r in results], np.array([r.T_wc for r in results]))
    metrics = tum_metrics(estimate, Trajectory.from_matrices(stamps, poses))
    assert metrics.matches == 25 and metrics.ate_rmse <= 0.01      # 2.2 mm when written
