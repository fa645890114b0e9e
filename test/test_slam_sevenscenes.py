"""Acceptance of the RGB-D front end on real data: 7-Scenes redkitchen dev frames 0-499 with ORB must be tracked
(at least 95 % of the frames) with an ATE RMSE of at most 5 cm against the 7-Scenes poses. Takes 20-40 s."""
import numpy as np

from rapnet_loc.io.source import open_source
from rapnet_loc.eval.tum import tum_metrics
from rapnet_loc.io.trajectory import Trajectory
from rapnet_loc.slam import System

FIRST, LAST = 0, 499


def test_redkitchen_500_frames(shared_data):
    source = open_source(shared_data / '7scenes-redkitchen-seq01-dev', (FIRST, LAST))
    system = System(source.camera, depth_info=source.depth_camera)
    results = [system.process(frame) for frame in source.frames()]
    stamps, poses = source.ground_truth()
    tracked = [r for r in results if r.T_wc is not None]
    assert len(results) == LAST - FIRST + 1
    assert len(tracked) >= 0.95 * len(results)
    estimate = Trajectory.from_matrices([r.stamp_ns for r in tracked], np.array([r.T_wc for r in tracked]))
    metrics = tum_metrics(estimate, Trajectory.from_matrices(stamps, poses))
    assert metrics.matches == len(tracked)
    assert metrics.ate_rmse <= 0.05
