"""VS-Net landmark voting (rapnet_loc.landmarks.voting) on synthetic votes and correspondences with known answers.

Votes: the pixels of a segment point at their landmark's true position, with Gaussian angle noise, and half of them
(outliers) in random directions. Correspondences: exact projections of 3-D points through a known pose, with pixel
noise and gross outliers.
"""
import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from rapnet_loc.errors import ConfigError
from rapnet_loc.geometry import rotation_angle
from rapnet_loc.landmarks.voting import VotingConfig, intersect_votes, solve_pose

MIN_SEGMENT = 20  # segments of the test scene smaller than this are dropped (the default, 5, is for network grids)
K = np.array([[525.0, 0, 320], [0, 525.0, 240], [0, 0, 1]])
WIDTH, HEIGHT = 160, 120
# landmark id: (segment centre, radius (px), true landmark position); id 7 lies outside the image
LANDMARKS = {3: ((30, 30), 10, (33, 28)), 5: ((80, 30), 12, (78, 35)), 6: ((130, 30), 8, (130, 30)),
             7: ((10, 80), 12, (-15, 82)), 9: ((60, 90), 9, (66, 88)), 12: ((105, 85), 14, (100, 80))}


def disk(centre, radius):
    """(n, 2) centres of the pixels within ``radius`` of ``centre``."""
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH]
    xy = np.stack([xx.ravel() + 0.5, yy.ravel() + 0.5], 1)
    return xy[np.linalg.norm(xy - centre, axis=1) <= radius]


def votes_at(xy, target, rng, noise_deg=0.5, outliers=0.5):
    """(n, 2) unit votes of pixels ``xy`` for ``target``: angle noise, a fraction of random directions."""
    d = np.asarray(target, dtype=np.float64) - xy
    angle = np.arctan2(d[:, 1], d[:, 0]) + np.radians(rng.normal(0, noise_deg, len(xy)))
    wrong = rng.uniform(size=len(xy)) < outliers
    angle[wrong] = rng.uniform(0, 2 * np.pi, wrong.sum())
    return np.stack([np.cos(angle), np.sin(angle)], 1)


def to_torch(parts, rng):
    """Concatenated (xy, votes, segment) of ``parts`` [(xy, votes, id)], in a random pixel order."""
    xy = np.concatenate([p[0] for p in parts])
    votes = np.concatenate([p[1] for p in parts])
    segment = np.concatenate([np.full(len(p[0]), p[2]) for p in parts])
    order = rng.permutation(len(xy))
    return (torch.tensor(xy[order], dtype=torch.float32), torch.tensor(votes[order], dtype=torch.float32),
            torch.tensor(segment[order], dtype=torch.int64))


@pytest.fixture(scope='module')
def voting_scene():
    """(xy, votes, segment) tensors of LANDMARKS, background and segments that must be dropped (ids 20-24), and
    the position of landmark 21 (five consistent votes, kept)."""
    rng = np.random.default_rng(0)
    parts = [(xy := disk(c, r), votes_at(xy, t, rng), i) for i, (c, r, t) in LANDMARKS.items()]
    background = rng.uniform([0, 0], [WIDTH, HEIGHT], (300, 2))
    parts.append((background, votes_at(background, (0, 0), rng, outliers=1.0), 0))
    # 20 random votes: chance agreement keeps such a segment in a few % of draws (more with more pixels)
    random = rng.uniform([20, 100], [60, 120], (20, 2))
    parts.append((random, votes_at(random, (0, 0), rng, outliers=1.0), 20))
    # ids 22 / 21: 4 / 5 votes at a point, the others pointing away from it (no other hypothesis, no support)
    point = np.array([140.0, 100.0])
    for n_consistent, i in ((4, 22), (5, 21)):
        xy = point + rng.uniform(-12, 12, (30, 2))
        away = (xy - point) / np.linalg.norm(xy - point, axis=1, keepdims=True)
        away[:n_consistent] *= -1
        parts.append((xy, away, i))
    small = disk((140, 60), 2.4)  # 17 pixels with perfect votes: below min_segment
    assert len(small) < MIN_SEGMENT
    parts.append((small, votes_at(small, (141, 61), rng, noise_deg=0.0, outliers=0.0), 24))
    return (*to_torch(parts, rng), point)


def test_intersect_votes_finds_the_landmarks_and_drops_unsupported_segments(voting_scene):
    """Every landmark within 0.5 px (one outside the image) despite 50 % outlier votes; random, too weakly
    supported (4 < min_votes) and too small segments are dropped; exactly min_votes consistent votes suffice."""
    xy, votes, segment, point = voting_scene
    cfg = VotingConfig(min_segment=MIN_SEGMENT)
    found = intersect_votes(xy, votes, segment, cfg, torch.Generator().manual_seed(0))
    assert found.ids.tolist() == sorted(LANDMARKS) + [21]
    truth = np.array([LANDMARKS[i][2] for i in found.ids[:-1]] + [point])
    errors = np.linalg.norm(found.points - truth, axis=1)
    assert errors.max() < 0.5, errors
    assert found.points.dtype == np.float64 and found.votes[-1] == cfg.min_votes
    assert np.all(found.votes[:-1] > 0.3 * np.bincount(segment.numpy())[found.ids[:-1]])
    # information: the sum of I - v v^T over the refining votes (trace: one per vote); landmark 7 lies 25 px left of
    # its segment, so its votes fix it far better across them (y) than along them (x)
    assert np.allclose(np.trace(found.information, axis1=1, axis2=2), found.votes)
    assert np.allclose(found.information, found.information.transpose(0, 2, 1))
    info_7 = found.information[found.ids == 7][0]
    assert info_7[1, 1] > 5 * info_7[0, 0]
    small = intersect_votes(xy, votes, segment, VotingConfig(min_segment=10), torch.Generator().manual_seed(0))
    assert 24 in small.ids and np.allclose(small.points[small.ids == 24], [141, 61], atol=1e-3)


def test_intersect_votes_is_deterministic_given_the_generator(voting_scene):
    xy, votes, segment, _ = voting_scene
    cfg = VotingConfig(hypotheses=64, min_segment=MIN_SEGMENT)
    a, b = (intersect_votes(xy, votes, segment, cfg, torch.Generator().manual_seed(5)) for _ in range(2))
    assert np.array_equal(a.ids, b.ids) and np.array_equal(a.points, b.points) and np.array_equal(a.votes, b.votes)
    empty = intersect_votes(xy[:0], votes[:0], segment[:0], cfg)
    assert len(empty) == 0 and empty.points.shape == (0, 2)


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA device')
def test_intersect_votes_on_the_gpu_matches_the_cpu(voting_scene):
    xy, votes, segment, _ = voting_scene
    cfg = VotingConfig()
    cpu = intersect_votes(xy, votes, segment, cfg, torch.Generator().manual_seed(0))
    gpu = intersect_votes(xy.cuda(), votes.cuda(), segment.cuda(), cfg, torch.Generator().manual_seed(0))
    assert np.array_equal(cpu.ids, gpu.ids) and np.allclose(cpu.points, gpu.points, atol=0.05)


def test_config_is_validated():
    with pytest.raises(ConfigError, match='inlier_cos'):
        VotingConfig(inlier_cos=1.5)
    with pytest.raises(ConfigError, match='min_votes'):
        VotingConfig(min_votes=1)
    with pytest.raises(ConfigError, match='hypotheses'):
        VotingConfig(hypotheses=2.5)
    with pytest.raises(ConfigError, match='vote_information must be true or false'):
        VotingConfig(vote_information='yes')


@pytest.fixture(scope='module')
def correspondences():
    """(T_cw (4, 4), pixels (30, 2) with 0.3 px noise, world points (30, 3), (30,) bool outlier): 9 gross
    outliers at least 30 px off."""
    rng = np.random.default_rng(1)
    T_cw = np.eye(4)
    T_cw[:3, :3] = Rotation.from_rotvec([0.2, -0.5, 0.1]).as_matrix()
    T_cw[:3, 3] = [0.3, -0.2, 1.0]
    n = 30
    z = rng.uniform(2.0, 6.0, n)
    uv_true = rng.uniform([0, 0], [640, 480], (n, 2))
    points_c = np.c_[(uv_true - K[:2, 2]) / K[0, 0] * z[:, None], z]
    points_w = (points_c - T_cw[:3, 3]) @ T_cw[:3, :3]
    uv = uv_true + rng.normal(0, 0.3, (n, 2))
    outlier = np.zeros(n, bool)
    outlier[rng.permutation(n)[:9]] = True
    uv[outlier] += rng.uniform(30, 200, (9, 2)) * rng.choice([-1, 1], (9, 2))
    return T_cw, uv, points_w, outlier


def test_solve_pose_recovers_the_pose_despite_outliers(correspondences):
    T_cw, uv, points_w, outlier = correspondences
    cfg = VotingConfig()
    est = solve_pose(uv, points_w, K, cfg)
    d = T_cw @ est.T_wc
    assert np.linalg.norm(d[:3, 3]) < 0.01 and np.degrees(rotation_angle(d[:3, :3])) < 0.2
    assert est.inliers == (~outlier).sum()
    cov = est.covariance
    assert cov.shape == (6, 6) and np.allclose(cov, cov.T, rtol=1e-6, atol=1e-12)
    eigenvalues = np.linalg.eigvalsh(cov)
    assert eigenvalues.min() > 0 and np.sqrt(eigenvalues.max()) < 0.01  # metres and radians
    weighted = solve_pose(uv, points_w, K, cfg, weights=np.full(len(uv), 7.0))
    assert np.allclose(weighted.T_wc, est.T_wc) and np.allclose(weighted.covariance, cov)
    # information matrices: 3 * I is the scalar 3; a matrix that is not positive definite drops its correspondence
    eyes = np.repeat(3 * np.eye(2)[None], len(uv), 0)
    assert np.allclose(solve_pose(uv, points_w, K, cfg, weights=eyes).T_wc, est.T_wc)
    eyes[np.flatnonzero(outlier)] = [[1.0, 2.0], [2.0, 1.0]]
    assert solve_pose(uv, points_w, K, cfg, weights=eyes).inliers == est.inliers
    eyes[np.flatnonzero(~outlier)[:-8]] = np.nan
    assert solve_pose(uv, points_w, K, cfg, weights=eyes) is None
    with_nan = solve_pose(np.r_[uv, [[np.nan, 1.0]]], np.r_[points_w, [[0.0, 0.0, 1.0]]], K, cfg)
    assert with_nan is not None and np.allclose(with_nan.T_wc, est.T_wc)


def test_solve_pose_gives_none_without_a_trustworthy_pose(correspondences):
    T_cw, uv, points_w, outlier = correspondences
    cfg = VotingConfig()
    good = np.flatnonzero(~outlier)
    assert solve_pose(uv[good[:5]], points_w[good[:5]], K, cfg) is None
    rng = np.random.default_rng(2)
    assert solve_pose(rng.uniform([0, 0], [640, 480], (30, 2)), points_w, K, cfg) is None
    line = np.linspace(0, 1, 20)[:, None] * np.array([1.0, 0.5, 0.2])
    points_c = line @ T_cw[:3, :3].T + T_cw[:3, 3]
    assert solve_pose(points_c[:, :2] / points_c[:, 2:] * K[0, 0] + K[:2, 2], line, K, cfg) is None
    assert solve_pose(np.full((10, 2), np.nan), np.full((10, 3), np.nan), K, cfg) is None
