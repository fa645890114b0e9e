"""Pose-only optimisation, its covariance and windowed bundle adjustment (rapnet_loc.slam.optimizer) on real
7-Scenes geometry (the covariance on synthetic points).

Map points are real: keypoints of frame 0 back-projected with their depth and placed in the world with the
ground-truth pose. Observations are their exact projections in other ground-truth views plus pixel noise, so the
expected optimum is known.
"""
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from rapnet_loc.features import Features, create_extractor
from rapnet_loc.geometry import invert, rotation_angle
from rapnet_loc.io.sevenscenes import SevenScenesFolder
from rapnet_loc.io.types import CameraInfo
from rapnet_loc.slam.camera import Camera
from rapnet_loc.slam.frame import Frame
from rapnet_loc.slam.optimizer import (BundleProblem, bundle_adjust, frame_covariance, optimize_pose, orthonormalize,
                                       pose_covariance, retract, so3_exp)

VIEWS = (0, 15, 30)


@pytest.fixture(scope='module')
def scene(shared_data):
    """(camera, world points (N, 3), T_cw of VIEWS (3, 4, 4)) from frame 0's keypoints with depth."""
    folder = SevenScenesFolder(shared_data / '7scenes-redkitchen-seq01-dev', 0, VIEWS[-1])
    camera = Camera.from_info(folder.camera_info())
    first = next(iter(folder))
    frame = Frame.create(0, 0, create_extractor('orb').extract(first.color), first.depth, camera, (0.1, 10.0))
    _, poses = folder.poses()
    idx = np.flatnonzero(frame.has_depth)
    points_w = frame.points_c[idx] @ poses[0, :3, :3].T + poses[0, :3, 3]
    return camera, points_w, np.stack([invert(poses[v]) for v in VIEWS])


def observe(camera, points_w, T_cw, rng, noise_px=0.5):
    """Noisy pixels (N, 2) and right coordinates (N,) of points seen from T_cw, and which are in the image."""
    points_c = points_w @ T_cw[:3, :3].T + T_cw[:3, 3]
    uv = camera.project(points_c) + rng.normal(0, noise_px, (len(points_w), 2))
    u_right = uv[:, 0] - camera.bf / points_c[:, 2]
    visible = (points_c[:, 2] > 0.1) & camera.in_image(uv)
    return uv, u_right, visible


def pose_error(T_a, T_b):
    d = invert(T_a) @ T_b
    return np.linalg.norm(d[:3, 3]), np.degrees(rotation_angle(d[:3, :3]))


def test_so3_exp_and_orthonormalize():
    rng = np.random.default_rng(0)
    w = rng.normal(size=(10, 3))
    assert np.allclose(so3_exp(w), Rotation.from_rotvec(w).as_matrix(), atol=1e-12)
    assert np.allclose(so3_exp(np.zeros(3)), np.eye(3))
    T = np.eye(4)
    T[:3, :3] = Rotation.from_rotvec([0.1, 0.2, 0.3]).as_matrix() * 1.01
    R = orthonormalize(T)[:3, :3]
    assert np.allclose(R @ R.T, np.eye(3), atol=1e-12) and np.linalg.det(R) > 0


def test_pose_recovered_and_outliers_marked(scene):
    camera, points_w, views = scene
    rng = np.random.default_rng(1)
    T_true = views[1]
    uv, u_right, visible = observe(camera, points_w, T_true, rng)
    pts, uv, u_right = points_w[visible], uv[visible], u_right[visible]
    n = len(pts)
    u_right[::3] = np.nan  # a third of the keypoints without depth: monocular residuals
    bad = rng.random(n) < 0.2
    uv[bad] += rng.choice([-1, 1], (bad.sum(), 2)) * rng.uniform(15, 60, (bad.sum(), 2))
    T_init = retract(T_true, np.array([0.03, -0.02, 0.04, 0.05, -0.04, 0.03]))
    assert pose_error(T_init, T_true)[0] > 0.05
    result = optimize_pose(T_init, pts, uv, u_right, np.ones(n), camera)
    trans, rot = pose_error(result.T_cw, T_true)
    assert trans < 0.003 and rot < 0.1
    assert np.mean(~result.inliers[bad]) > 0.98
    assert np.mean(result.inliers[~bad]) > 0.93
    assert result.n_inliers == result.inliers.sum() and np.all(result.chi2[result.inliers] <= 7.815)


def test_pose_needs_three_observations(scene):
    camera, points_w, views = scene
    uv, u_right, _ = observe(camera, points_w[:2], views[0], np.random.default_rng(2))
    result = optimize_pose(views[0], points_w[:2], uv, u_right, np.ones(2), camera)
    assert np.array_equal(result.T_cw, views[0]) and not result.inliers.any()


def test_bundle_adjustment_reduces_pose_and_point_errors(scene):
    camera, points_w, views = scene
    rng = np.random.default_rng(3)
    obs = [observe(camera, points_w, T, rng, noise_px=0.2) for T in views]
    seen = np.all([o[2] for o in obs], axis=0)
    pts = points_w[seen][::4]
    kf_index, point_index, uv, u_right = [], [], [], []
    for k, (o_uv, o_ur, _) in enumerate(obs):
        kf_index.append(np.full(len(pts), k))
        point_index.append(np.arange(len(pts)))
        uv.append(o_uv[seen][::4])
        u_right.append(o_ur[seen][::4])
    # views 1 and 2 are free (perturbed); view 0 is fixed
    order = np.array([1, 2, 0])
    T_init = np.stack([retract(views[1], np.array([0.01, 0.0, -0.01, 0.02, 0.01, -0.02])),
                       retract(views[2], np.array([-0.01, 0.01, 0.0, -0.02, 0.02, 0.01])), views[0]])
    pts_init = pts + rng.normal(0, 0.01, pts.shape)
    slot = np.argsort(order)
    problem = BundleProblem(T_init, 2, pts_init, slot[np.concatenate(kf_index)], np.concatenate(point_index),
                            np.concatenate(uv), np.concatenate(u_right), np.ones(3 * len(pts)))
    poses, points, inliers = bundle_adjust(problem, camera, iterations=10)
    assert np.array_equal(poses[2], views[0])
    for k, view in enumerate(order[:2]):
        assert pose_error(poses[k], views[view])[0] < 0.25 * pose_error(T_init[k], views[view])[0]
    assert np.median(np.linalg.norm(points - pts, axis=1)) < 0.5 * np.median(np.linalg.norm(pts_init - pts, axis=1))
    assert inliers.mean() > 0.95


def test_interrupted_bundle_adjustment_keeps_its_state(scene):
    """``stop()`` true from the start: no step is made and the poses (re-orthonormalised) and points come back as
    given (a keyframe arriving during local bundle adjustment ends it, ORB-SLAM2's ``InterruptBA``); without it
    they move."""
    camera, points_w, views = scene
    rng = np.random.default_rng(1)
    obs = [observe(camera, points_w, T, rng) for T in views[:2]]
    seen = obs[0][2] & obs[1][2]
    n = int(seen.sum())
    start = points_w[seen] + rng.normal(0, 0.01, (n, 3))
    problem = BundleProblem(views[:2].copy(), 1, start, np.repeat([0, 1], n), np.tile(np.arange(n), 2),
                            np.concatenate([o[0][seen] for o in obs]), np.concatenate([o[1][seen] for o in obs]),
                            np.ones(2 * n))
    poses, points, _ = bundle_adjust(problem, camera, iterations=10, stop=lambda: True)
    assert np.allclose(poses[0], orthonormalize(views[0]), atol=1e-12) and np.array_equal(poses[1], views[1])
    assert np.array_equal(points, start)
    _, moved, _ = bundle_adjust(problem, camera, iterations=10)
    assert np.median(np.linalg.norm(moved - points_w[seen], axis=1)) < 0.5 * np.median(
        np.linalg.norm(start - points_w[seen], axis=1))


def test_bundle_adjustment_with_every_pose_fixed_refines_the_points(scene):
    camera, points_w, views = scene
    rng = np.random.default_rng(4)
    obs = [observe(camera, points_w, T, rng, noise_px=0.2) for T in views[:2]]
    seen = obs[0][2] & obs[1][2]
    pts = points_w[seen][::4]
    n = len(pts)
    problem = BundleProblem(views[:2].copy(), 0, pts + rng.normal(0, 0.01, pts.shape), np.repeat([0, 1], n),
                            np.tile(np.arange(n), 2), np.concatenate([o[0][seen][::4] for o in obs]),
                            np.concatenate([o[1][seen][::4] for o in obs]), np.ones(2 * n))
    poses, points, inliers = bundle_adjust(problem, camera, iterations=10)
    assert np.array_equal(poses, views[:2])
    assert np.median(np.linalg.norm(points - pts, axis=1)) < 0.004 and inliers.mean() > 0.95


def test_frame_covariance_matches_the_spread_of_noisy_estimates():
    """The covariance of a frame's pose (ROS order: camera centre in the world, then rotation about the world's
    axes) predicts how the pose optimised from noisy pixels scatters around the truth (synthetic points, 1 px
    noise, 300 draws): each predicted standard deviation within 25 % of the observed one."""
    rng = np.random.default_rng(3)
    camera = Camera.from_info(CameraInfo(640, 480, np.array([[525.0, 0, 320], [0, 525.0, 240], [0, 0, 1]])))
    T_cw = np.eye(4)
    T_cw[:3, :3] = Rotation.from_rotvec([0.2, -0.5, 0.1]).as_matrix()
    T_cw[:3, 3] = [0.3, -0.2, 1.0]
    points_c = rng.uniform([-1.5, -1.0, 1.5], [1.5, 1.0, 4.0], (80, 3))
    points_w = (points_c - T_cw[:3, 3]) @ T_cw[:3, :3]
    n = len(points_w)
    features = Features(np.zeros((n, 2)), np.ones(n), np.zeros((n, 32), np.uint8))
    errors, covariances = [], []
    for _ in range(300):
        uv = camera.project(points_c) + rng.normal(0, 1.0, (n, 2))
        no_depth = np.full(n, np.nan)
        T = optimize_pose(T_cw, points_w, uv, no_depth, np.ones(n), camera).T_cw
        frame = Frame(0, 0, features, uv, np.zeros(n), np.full((n, 3), np.nan), no_depth, np.ones(n),
                      np.arange(n), T)
        covariances.append(frame_covariance(frame, points_w, camera))
        R_wc, R_true = T[:3, :3].T, T_cw[:3, :3].T
        errors.append(np.r_[invert(T)[:3, 3] - invert(T_cw)[:3, 3],
                            Rotation.from_matrix(R_wc @ R_true.T).as_rotvec()])
    observed = np.sqrt(np.diag(np.cov(np.array(errors).T)))
    predicted = np.sqrt(np.diag(np.mean(covariances, axis=0)))
    assert np.all(np.abs(predicted / observed - 1) < 0.25), (predicted, observed)


def test_pose_with_information_matrices(scene):
    """Observations without depth whose noise is an ellipse (3 px along a random direction, 0.3 px across): weighing
    each by its inverse covariance (2 x 2 information) beats one scalar weight (mean error over 8 draws); identity
    matrices are the scalar 1."""
    camera, points_w, views = scene
    T_true = views[1]
    T_init = retract(T_true, np.array([0.01, -0.01, 0.01, 0.02, -0.02, 0.01]))
    errors = []
    for seed in range(8):
        rng = np.random.default_rng(seed)
        uv, _, visible = observe(camera, points_w, T_true, rng, noise_px=0.0)
        pts, uv = points_w[visible], uv[visible]
        n = len(pts)
        no_depth = np.full(n, np.nan)
        angle = rng.uniform(0, np.pi, n)
        axis = np.stack([np.cos(angle), np.sin(angle)], 1)
        across = np.stack([-axis[:, 1], axis[:, 0]], 1)
        uv = uv + axis * rng.normal(0, 3.0, (n, 1)) + across * rng.normal(0, 0.3, (n, 1))
        covariance = 9.0 * axis[:, :, None] * axis[:, None, :] + 0.09 * across[:, :, None] * across[:, None, :]
        scalar = optimize_pose(T_init, pts, uv, no_depth, np.full(n, 1 / 9.0), camera, rounds=1)
        matrix = optimize_pose(T_init, pts, uv, no_depth, np.linalg.inv(covariance), camera, rounds=1)
        errors.append((pose_error(scalar.T_cw, T_true)[0], pose_error(matrix.T_cw, T_true)[0]))
    mean_scalar, mean_matrix = np.mean(errors, axis=0)
    assert mean_matrix < 0.5 * mean_scalar, errors
    ones = optimize_pose(T_init, pts, uv, no_depth, np.ones(n), camera)
    eyes = optimize_pose(T_init, pts, uv, no_depth, np.repeat(np.eye(2)[None], n, 0), camera)
    assert np.allclose(ones.T_cw, eyes.T_cw, atol=1e-12) and np.array_equal(ones.inliers, eyes.inliers)
    assert np.allclose(ones.chi2, eyes.chi2)
    cov_ones = pose_covariance(ones.T_cw, pts, uv, no_depth, np.ones(n), camera)
    cov_eyes = pose_covariance(ones.T_cw, pts, uv, no_depth, np.repeat(np.eye(2)[None], n, 0), camera)
    assert np.allclose(cov_ones, cov_eyes, rtol=1e-9)
    with pytest.raises(ValueError, match=r'\(M, 2, 2\)'):
        optimize_pose(T_init, pts, uv, no_depth, np.ones((n, 3, 3)), camera)
