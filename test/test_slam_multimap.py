"""Several maps (issue P8, acceptance 2): a synthetic robot drives laps through an office (``--path loop``); after
100 frames it is kidnapped to a place 150 frames further on its path that the map has not seen yet. Tracking is
lost there and relocalization fails, so after ``new_map_after_s`` (1 s) the front end starts map 1 and tracks on in
it; when the lap brings the robot back to where map 0 was built, a new keyframe recognizes map 0, the detection is
confirmed by the next keyframes, and map 1 is merged into map 0. The merged map then agrees with the ground truth
in the first camera's frame, with no alignment: keyframe poses and points made while in map 1 included. With wheel
odometry the new map starts at the pose the odometry predicts, so its poses are in the first map's frame at once.

Scene: office, seed 0, one 900-frame sequence at 424x240 on a ``loop`` path, no people and no other challenge
(the benchmark ``bench_multimap.py`` runs the same with every challenge on)."""
import dataclasses
import logging

import numpy as np
import pytest
from test_slam_map_io import assert_same_map

from rapnet_loc.io.source import open_source
from rapnet_loc.slam import System
from rapnet_loc.slam.config import SlamConfig
from rapnet_loc.slam.map_io import load_map
from rapnet_loc.slam.merging import Detection
from rapnet_loc.slam.odometry import OdometryPrior
from rapnet_loc.slam.run import pose_lookup
from rapnet_loc.synth import Challenges, generate

KIDNAP = (100, 250)       # frames 100..249 are skipped: the robot is elsewhere when frame 250 arrives
CALM = Challenges(people=0, repetitive=False, featureless=False, illumination=False, moved_furniture=False,
                  motion_blur=False)


@pytest.fixture(scope='module')
def laps(tmp_path_factory):
    """The frames after the kidnap's cut, the camera, the ground truth lookup and the wheel odometry."""
    out = tmp_path_factory.mktemp('multimap')
    bag = generate(out, scene='office', sequences=1, frames=900, width=424, height=240, seed=0, challenges=CALM,
                   compression='none', progress=False, path='loop').bags[0]
    with open_source(bag) as source:
        frames = [f for i, f in enumerate(source.frames()) if not KIDNAP[0] <= i < KIDNAP[1]]
        return frames, source.camera, pose_lookup(*source.ground_truth()), source.odometry()


def run(laps, odometry: bool, n_frames: int | None = None) -> tuple[System, list]:
    """The front end (with the wheel odometry or without) over the first ``n_frames`` frames (None: all)."""
    frames, camera, _, odom = laps
    system = System(camera, SlamConfig(), odometry=OdometryPrior(*odom) if odometry else None)
    return system, [system.process(f) for f in frames[:n_frames]]


def errors_cm(system: System, results: list, laps) -> np.ndarray:
    """Position errors (cm) of every frame's pose in the first map's frame (``pose_in_first_map``) against the
    ground truth, world = first camera; NaN where no pose."""
    frames, _, gt_at, _ = laps
    g0 = gt_at(frames[0].stamp_ns)
    out = np.full(len(results), np.nan)
    for n, (frame, r) in enumerate(zip(frames, results)):
        T = system.pose_in_first_map(r)
        if T is not None:
            out[n] = 100 * np.linalg.norm((g0 @ T)[:3, 3] - gt_at(frame.stamp_ns)[:3, 3])
    return out


def test_kidnap_starts_a_new_map_within_a_second_and_the_maps_merge(laps, caplog):
    frames, camera, gt_at, _ = laps
    with caplog.at_level(logging.INFO, logger='rapnet_loc.slam'):
        system, results = run(laps, odometry=False)
    states = [r.state for r in results]
    jump = KIDNAP[0]
    new_map = states.index('new_map')
    assert new_map > jump and all(s == 'lost' for s in states[jump:new_map])
    assert (frames[new_map].stamp_ns - frames[jump].stamp_ns) / 1e9 <= 1.0 + 1 / 30
    assert results[new_map].map_id == 1
    assert 'new map 1 started (not anchored: no odometry over the loss)' in caplog.text

    slam_map = system.map
    assert slam_map.map_ids == [0] and slam_map.merged.keys() == {1} and slam_map.merged[1][0] == 0
    assert 'map 1 merged into map 0' in caplog.text
    merged_at = next(n for n, r in enumerate(results) if n > new_map and r.map_id == 0)
    assert all(r.map_id == 1 for r in results[new_map:merged_at])

    err = errors_cm(system, results, laps)
    assert np.isnan(err[jump:new_map]).all() and not np.isnan(err[new_map:]).any()
    # output policy: what each frame's pose is anchored by, and its covariance moved with it into the first map
    anchors = [system.anchor(r) for r in results]
    assert set(anchors[:jump]) == {'first map'} and set(anchors[jump:new_map]) == {'lost'}
    assert set(anchors[new_map:]) == {'first map'}, 'map 1 is merged: every pose of it is in the first map'
    for r in results[new_map:merged_at]:
        cov = system.covariance_in_first_map(r)
        np.testing.assert_allclose(np.trace(cov[:3, :3]), np.trace(r.covariance[:3, :3]), rtol=1e-9)
        assert np.sqrt(np.diag(cov)[:3]).max() < 0.05
    assert np.median(err[:jump]) < 5 and np.median(err[new_map:merged_at]) < 5 and np.median(err[merged_at:]) < 5

    # the merge's depth check over a window of keyframes: the map agrees with itself; turned 180 degrees about the
    # vertical through the middle of the lap (a place matched from the other side), its keyframes land where the
    # lap passes the other way and violate free space there
    merging = system.tracking.merging
    assert merging.window_agrees(Detection(0, 0, 0, 0, np.eye(4), 0))
    middle = np.mean([kf.center for kf in slam_map.keyframes.values()], axis=0)
    turned = np.diag([-1.0, 1.0, -1.0, 1.0])                 # the world's y axis is the first camera's vertical
    turned[:3, 3] = middle - turned[:3, :3] @ middle
    assert not merging.window_agrees(Detection(0, 0, 0, 0, turned, 0))

    # the merged map's keyframes and points made in map 1 agree with the ground truth as well as map 0's do
    in_map_0 = map_errors_cm(slam_map, laps, frames[0].stamp_ns, frames[jump - 1].stamp_ns)
    in_map_1 = map_errors_cm(slam_map, laps, frames[new_map].stamp_ns, frames[merged_at].stamp_ns)
    assert in_map_0[0] < 5 and in_map_0[1] < 10
    assert in_map_1[0] < 5 and in_map_1[1] < 10


def map_errors_cm(slam_map, laps, first_ns: int, last_ns: int) -> tuple[float, float]:
    """Median errors (cm) of the keyframes made between two stamps (position against the ground truth, world =
    first camera) and of their map points (against the keypoints' depth placed with the ground-truth pose)."""
    frames, _, gt_at, _ = laps
    g0 = gt_at(frames[0].stamp_ns)
    kf_err, point_err = [], []
    for kf in slam_map.keyframes.values():
        if not first_ns <= kf.frame.stamp_ns <= last_ns:
            continue
        T_gt = gt_at(kf.frame.stamp_ns)
        kf_err.append(100 * np.linalg.norm((g0 @ kf.T_wc)[:3, 3] - T_gt[:3, 3]))
        kps = np.flatnonzero((kf.point_ids >= 0) & kf.frame.has_depth)
        world = slam_map.points.positions[kf.point_ids[kps]] @ g0[:3, :3].T + g0[:3, 3]
        in_camera = (world - T_gt[:3, 3]) @ T_gt[:3, :3]          # ground-truth camera frame
        point_err.extend(100 * np.linalg.norm(in_camera - kf.frame.points_c[kps], axis=1))
    assert len(kf_err) >= 3
    return float(np.median(kf_err)), float(np.median(point_err))


def test_with_odometry_the_new_map_is_anchored_and_its_poses_are_output_at_once(laps):
    """Up to 200 frames after the kidnap (before the lap comes back): map 1 is not merged, yet its poses are in the
    first map's frame, off by the odometry's drift over the 6 s since the last tracked frame (centimetres, where
    the robot moved more than half a metre) and then by map 1's own drift."""
    frames, _, gt_at, _ = laps
    system, results = run(laps, odometry=True, n_frames=KIDNAP[0] + 200)
    states = [r.state for r in results]
    new_map = states.index('new_map')
    assert results[-1].map_id == 1 and 1 in system.map.anchored and not system.map.merged
    moved = np.linalg.norm(gt_at(frames[new_map].stamp_ns)[:3, 3] - gt_at(frames[KIDNAP[0] - 1].stamp_ns)[:3, 3])
    err = errors_cm(system, results, laps)
    assert moved > 0.5 and err[new_map] < 10
    assert {system.anchor(r) for r in results[new_map:]} == {'odometry'}
    assert not np.isnan(err[new_map:]).any() and np.median(err[new_map:]) < 20


def test_a_short_loss_is_bridged_by_odometry(laps):
    """Frames 60-74 black (half a second lost): with odometry they get the pose it predicts from frame 59 (state
    ``bridged``, anchored by odometry), within centimetres of the ground truth; without odometry they get none.
    Frame 75 relocalizes either way (with odometry, inside the odometry gate)."""
    frames, camera, _, odom = laps
    blind = [dataclasses.replace(f, color=np.zeros_like(f.color)) if 60 <= i < 75 else f
             for i, f in enumerate(frames[:80])]
    for odometry in (True, False):
        system = System(camera, SlamConfig(), odometry=OdometryPrior(*odom) if odometry else None)
        results = [system.process(f) for f in blind]
        states = [r.state for r in results]
        assert states[75] == 'relocalized' and set(states[76:]) == {'ok'}
        err = errors_cm(system, results, laps)
        if odometry:
            assert states[60:75] == ['bridged'] * 15
            assert {system.anchor(r) for r in results[60:75]} == {'odometry'}
            assert err[60:75].max() < 5
        else:
            assert states[60:75] == ['lost'] * 15 and np.isnan(err[60:75]).all()


def test_maps_save_and_load_as_a_set(laps, tmp_path):
    """A map holding two maps (the second anchored by odometry, not merged) round-trips with its map ids."""
    system, results = run(laps, odometry=True, n_frames=KIDNAP[0] + 60)
    assert system.map.map_ids == [0, 1]
    system.save_map(tmp_path / 'two.map')
    loaded = load_map(tmp_path / 'two.map')
    assert_same_map(system.map, loaded.map)
    assert loaded.map.to_first_frame(1) is not None and np.array_equal(loaded.map.to_first_frame(1), np.eye(4))
