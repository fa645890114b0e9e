"""Robustness of the RGB-D front end to bad input on real 7-Scenes redkitchen frames: images without any keypoint,
frames without valid depth, gaps and backward jumps in the stamps. Tracking reports lost where it cannot track,
relocalizes afterwards, and nothing raises; the motion model follows the stamps."""
import logging

import numpy as np
import pytest

from rapnet_loc.io.source import open_source
from rapnet_loc.eval.tum import tum_metrics
from rapnet_loc.io.trajectory import Trajectory
from rapnet_loc.io.types import RGBDFrame
from rapnet_loc.slam import System
from rapnet_loc.slam.odometry import ConstantVelocity, motion_exp, motion_log

GAP_NS = 5 * 10**9
FRAME_NS = 10**9 // 30


@pytest.fixture(scope='module')
def kitchen(shared_data):
    """Frames 0..119 and 210..239 (a list indexed by frame number, None between), camera, depth camera and the
    ground truth (stamps, camera-to-world poses) of frames 0..239."""
    path = shared_data / '7scenes-redkitchen-seq01-dev'
    source = open_source(path, (0, 239))
    frames = list(open_source(path, (0, 119)).frames()) + [None] * 90 + list(open_source(path, (210, 239)).frames())
    return frames, source.camera, source.depth_camera, source.ground_truth()


def replay(kitchen, frames):
    """Track ``frames``; results and the TUM metrics of the tracked ones against the 7-Scenes poses."""
    _, camera, depth_camera, (stamps, poses) = kitchen
    system = System(camera, depth_info=depth_camera)
    results = [system.process(f) for f in frames]
    tracked = [(f.index, r) for f, r in zip(frames, results) if r.T_wc is not None]
    estimate = Trajectory.from_matrices([stamps[i] for i, _ in tracked], np.array([r.T_wc for _, r in tracked]))
    return system, results, tum_metrics(estimate, Trajectory.from_matrices(stamps, poses))


def with_(frame: RGBDFrame, **changes) -> RGBDFrame:
    fields = {'index': frame.index, 'stamp_ns': frame.stamp_ns, 'color': frame.color, 'depth': frame.depth}
    return RGBDFrame(**(fields | changes))


def test_images_without_keypoints_are_lost_then_relocalized(kitchen):
    frames = kitchen[0][:80]
    frames = [with_(f, color=np.zeros_like(f.color)) if f.index in (30, 31) else
              with_(f, color=np.full_like(f.color, 128)) if f.index == 50 else f for f in frames]
    _, results, metrics = replay(kitchen, frames)
    states = [r.state for r in results]
    assert [results[i].n_keypoints for i in (30, 31, 50)] == [0, 0, 0]
    assert states[30:33] == ['lost', 'lost', 'relocalized'] and states[50:52] == ['lost', 'relocalized']
    assert all(s == 'ok' for i, s in enumerate(states) if i not in (30, 31, 32, 50, 51))
    assert results[30].T_wc is None and results[50].n_tracked == 0
    assert metrics.ate_rmse < 0.03


def test_frames_without_depth_are_tracked_from_keypoints(kitchen):
    frames = [with_(f, depth=np.zeros_like(f.depth)) if 40 <= f.index < 50 else f for f in kitchen[0][:80]]
    _, results, metrics = replay(kitchen, frames)
    assert all(r.state == 'ok' for r in results)
    assert not any(r.keyframe for r in results[40:50])
    assert metrics.ate_rmse < 0.03


def test_stamp_gap_resets_the_motion_model(kitchen, caplog):
    """A 5 s gap with the camera where it was: tracked on. A 5 s gap over which the camera moved on (150 frames
    skipped): lost, then relocalized."""
    frames = kitchen[0]
    still = frames[:60] + [with_(f, stamp_ns=f.stamp_ns + GAP_NS) for f in frames[60:90]]
    with caplog.at_level(logging.INFO, logger='rapnet_loc.slam.tracking'):
        system, results, metrics = replay(kitchen, still)
    assert 'frame 60: 5.033 s after the previous frame; motion model reset' in caplog.text
    assert all(r.state == 'ok' for r in results) and metrics.ate_rmse < 0.03
    moved = frames[:60] + frames[210:240]
    _, results, metrics = replay(kitchen, moved)
    states = [r.state for r in results]
    assert states[:60] == ['ok'] * 60 and states[60:62] == ['lost', 'relocalized'] and states[62:] == ['ok'] * 28
    assert metrics.ate_rmse < 0.04


def test_stamp_going_backwards_is_logged_and_handled(kitchen, caplog):
    frames = kitchen[0]
    jumped = frames[:50] + [with_(f, stamp_ns=f.stamp_ns - 3 * 10**9) for f in frames[50:80]]
    _, camera, depth_camera, _ = kitchen
    system = System(camera, depth_info=depth_camera)
    with caplog.at_level(logging.WARNING, logger='rapnet_loc.slam.tracking'):
        for f in jumped[:51]:
            result = system.process(f)
    assert 'frame 50: stamp' in caplog.text and 'before the previous frame' in caplog.text
    assert result.state == 'ok' and system.tracking.motion.rate is None
    _, results, metrics = replay(kitchen, jumped)
    assert all(r.state == 'ok' for r in results) and metrics.ate_rmse < 0.03


def test_stamp_jump_starts_a_new_sequence_that_relocalizes_first(kitchen, caplog):
    """A jump of a minute forward (the next recording; 65 s with the frames skipped) and one back: each next
    frame relocalizes against the map before anything else, then tracking goes on; the map is kept."""
    frames = kitchen[0]
    later = frames[:60] + [with_(f, stamp_ns=f.stamp_ns + 60 * 10**9) for f in frames[210:240]]
    with caplog.at_level(logging.INFO, logger='rapnet_loc.slam.tracking'):
        system, results, metrics = replay(kitchen, later)
    assert 'frame 60: 65.0 s from the previous frame; a new sequence starts: relocalizing first' in caplog.text
    states = [r.state for r in results]
    assert states[:60] == ['ok'] * 60 and states[60] == 'relocalized' and states[61:] == ['ok'] * 29
    assert system.tracking.motion.rate is not None and metrics.ate_rmse < 0.04
    back = frames[:60] + [with_(f, stamp_ns=f.stamp_ns - 60 * 10**9) for f in frames[60:90]]
    _, results, metrics = replay(kitchen, back)
    assert [r.state for r in results[59:62]] == ['ok', 'relocalized', 'ok'] and metrics.ate_rmse < 0.03


def test_dropped_frames_are_predicted_over_their_stamp_gap(kitchen):
    """Every second and third frame missing in the middle: the motion model extrapolates over the longer gaps."""
    frames = [f for f in kitchen[0][:120] if not (40 <= f.index < 100 and f.index % 3)]
    _, results, metrics = replay(kitchen, frames)
    assert all(r.state == 'ok' for r in results) and metrics.ate_rmse < 0.03


def test_constant_velocity_scales_with_the_stamp_gap():
    model = ConstantVelocity(max_gap_s=1.0)
    step = motion_exp(np.array([0.0, 0.02, 0.0, 0.01, 0.0, 0.03]))
    assert np.allclose(model.predict(0, FRAME_NS), np.eye(4))
    model.update(np.eye(4), 0, step, FRAME_NS)
    assert np.allclose(model.predict(FRAME_NS, 2 * FRAME_NS), step)
    assert np.allclose(motion_log(model.predict(FRAME_NS, 4 * FRAME_NS)), 3 * motion_log(step))
    assert np.allclose(model.predict(FRAME_NS, FRAME_NS + 2 * 10**9), np.eye(4))
    assert np.allclose(model.predict(FRAME_NS, 0), np.eye(4))
    model.update(np.eye(4), FRAME_NS, step, FRAME_NS + 2 * 10**9)
    assert model.rate is None
