"""Descriptor distances and matching (rapnet_loc.features.matching) on a real 7-Scenes pair with known poses, and the
per-metric descriptor thresholds of the front end on RaP-Net features of a synthetic pair."""
import numpy as np
import pytest

from rapnet_loc.features import create_extractor
from rapnet_loc.features.matching import match_mutual, pairwise_distances, row_distances, search_by_projection
from rapnet_loc.geometry import invert
from rapnet_loc.io.openloris import OpenLORISBag
from rapnet_loc.io.sevenscenes import SevenScenesFolder
from rapnet_loc.io.types import CameraInfo
from rapnet_loc.rapnet.data import reproject
from rapnet_loc.slam.camera import Camera
from rapnet_loc.slam.config import TrackingConfig
from rapnet_loc.slam.frame import Frame
from rapnet_loc.synth import Challenges, generate

PAIR = (0, 10)


@pytest.fixture(scope='module')
def pair(shared_data):
    """Frames 0 and 10 as ``Frame`` objects (ORB, depth registered with the depth intrinsics) and T_b_a (4, 4)."""
    path = shared_data / '7scenes-redkitchen-seq01-dev'
    folder = SevenScenesFolder(path, PAIR[0], PAIR[1])
    camera = Camera.from_info(folder.camera_info())
    depth_camera = Camera.from_info(CameraInfo(640, 480, np.loadtxt(path / 'camera-intrinsics.txt')))
    extractor = create_extractor('orb')
    frames = {f.index: Frame.create(f.index, f.stamp_ns, extractor.extract(f.color), f.depth, camera, (0.1, 10.0),
                                    depth_camera)
              for f in folder if f.index in PAIR}
    _, poses = folder.poses()
    return frames[PAIR[0]], frames[PAIR[1]], invert(poses[-1]) @ poses[0], camera


def test_hamming_distances_match_bit_counts():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (50, 32), dtype=np.uint8)
    b = rng.integers(0, 256, (40, 32), dtype=np.uint8)
    expected = np.unpackbits(a[:, None, :] ^ b[None, :, :], axis=2).sum(axis=2)
    assert np.array_equal(pairwise_distances(a, b, 'hamming'), expected)
    assert np.array_equal(row_distances(a[:40], b, 'hamming'), np.diag(expected))
    odd_a, odd_b = a[:, :5], b[:, :5]  # byte counts that are not a multiple of 8
    assert np.array_equal(pairwise_distances(odd_a, odd_b, 'hamming'),
                          np.unpackbits(odd_a[:, None, :] ^ odd_b[None, :, :], axis=2).sum(axis=2))


def test_l2_distances():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(30, 16)).astype(np.float32), rng.normal(size=(20, 16)).astype(np.float32)
    expected = np.linalg.norm(a[:, None] - b[None], axis=2)
    assert np.allclose(pairwise_distances(a, b, 'l2'), expected, atol=1e-4)
    assert np.allclose(row_distances(a[:20], b, 'l2'), np.diag(expected), atol=1e-5)
    with pytest.raises(ValueError, match='unknown descriptor distance'):
        pairwise_distances(a, b, 'cosine')


def test_mutual_matches_are_mutual_and_pass_ratio():
    rng = np.random.default_rng(2)
    a = rng.integers(0, 256, (200, 32), dtype=np.uint8)
    b = a[::-1].copy()
    b[:, 0] ^= 1  # one flipped bit per descriptor
    matches, dist = match_mutual(a, b, 'hamming', ratio=0.8)
    assert len(matches) == 200 and np.all(matches[:, 1] == 199 - matches[:, 0]) and np.all(dist == 1)
    assert len(match_mutual(a, b, 'hamming', max_distance=0.5)[0]) == 0
    assert match_mutual(a[:0], b, 'hamming')[0].shape == (0, 2)


def _reprojection_errors(frame_a, frame_b, T_ba, camera, idx_a, idx_b):
    """Pixel distance between keypoints ``idx_b`` of frame b and keypoints ``idx_a`` of frame a moved there with
    their depth and the ground-truth motion (NaN where frame a has no depth)."""
    points = frame_a.points_c[idx_a] @ T_ba[:3, :3].T + T_ba[:3, 3]
    return np.linalg.norm(camera.project(points) - frame_b.keypoints_un[idx_b], axis=1)


def test_mutual_matching_agrees_with_ground_truth(pair):
    frame_a, frame_b, T_ba, camera = pair
    fa, fb = frame_a.features, frame_b.features
    matches, _ = match_mutual(fa.descriptors, fb.descriptors, fa.distance, ratio=0.8, max_distance=50)
    assert len(matches) > 300
    err = _reprojection_errors(frame_a, frame_b, T_ba, camera, matches[:, 0], matches[:, 1])
    err = err[~np.isnan(err)]
    assert len(err) > 250
    assert np.mean(err < 5.0) > 0.9


def test_search_by_projection_with_ground_truth_motion(pair):
    frame_a, frame_b, T_ba, camera = pair
    fa, fb = frame_a.features, frame_b.features
    idx_a = np.flatnonzero(frame_a.has_depth)
    points = frame_a.points_c[idx_a] @ T_ba[:3, :3].T + T_ba[:3, 3]
    uv = camera.project(points)
    levels = fa.levels[idx_a].astype(np.int64)
    radius = 8.0 * fa.level_scales[idx_a]
    match, dist = search_by_projection(uv, fa.descriptors[idx_a], radius, frame_b.keypoints_un, fb.descriptors,
                                       'hamming', max_distance=100, ratio=0.9, level_range=(levels - 1, levels + 1),
                                       kp_levels=fb.levels)
    found = match >= 0
    assert found.sum() > 0.5 * len(idx_a)
    kp = match[found]
    assert len(np.unique(kp)) == len(kp), 'a keypoint goes to one point only'
    assert np.all(np.linalg.norm(uv[found] - frame_b.keypoints_un[kp], axis=1) <= radius[found] + 1e-9)
    assert np.all(np.abs(fb.levels[kp] - levels[found]) <= 1)
    assert np.array_equal(dist[found], row_distances(fa.descriptors[idx_a[found]], fb.descriptors[kp], 'hamming'))
    assert np.all(dist[found] <= 100) and np.all(np.isinf(dist[~found]))
    err = _reprojection_errors(frame_a, frame_b, T_ba, camera, idx_a[found], kp)
    assert np.mean(err < 5.0) > 0.9
    # keypoints marked unavailable are never matched
    available = np.ones(len(fb), bool)
    available[kp[:50]] = False
    again, _ = search_by_projection(uv, fa.descriptors[idx_a], radius, frame_b.keypoints_un, fb.descriptors,
                                    'hamming', 100, 0.9, (levels - 1, levels + 1), fb.levels, available)
    assert not np.isin(again, kp[:50]).any()


def test_search_by_projection_without_candidates():
    uv = np.array([[10.0, 10.0]])
    desc = np.zeros((1, 32), np.uint8)
    match, dist = search_by_projection(uv, desc, 5.0, np.zeros((0, 2)), np.zeros((0, 32), np.uint8), 'hamming', 100)
    assert match.tolist() == [-1] and np.isinf(dist[0])
    match, _ = search_by_projection(uv, desc, 5.0, np.array([[100.0, 100.0]]), desc, 'hamming', 100)
    assert match.tolist() == [-1]
    match, _ = search_by_projection(uv, desc, 5.0, np.array([[12.0, 11.0]]), desc, 'hamming', 100)
    assert match.tolist() == [0]


def test_rapnet_thresholds_reject_wrong_matches_that_the_hamming_values_accept(tmp_path):
    """RaP-Net descriptors (shipped weights) of two synthetic frames 1/3 s apart, matched by mutual nearest
    neighbours: the previous release's single thresholds (Hamming bits: 50 for descriptor-only matches) accept every
    match, wrong ones included; the per-metric ``l2`` threshold rejects wrong ones and keeps the right ones. (The
    synthetic textures repeat, so most wrong matches here look alike: it rejects about one in seven.)"""
    summary = generate(tmp_path, scene='office', sequences=1, frames=11, width=320, height=240, seed=2,
                       challenges=Challenges.none(), compression='none', progress=False)
    with OpenLORISBag(summary.bags[0]) as bag:
        K, frames = bag.camera_info().K, list(bag.rgbd_frames())
    T_wc = summary.sequences[0].T_world_cam
    extractor = create_extractor('rapnet', {'max_edge': 320})
    fa, fb = (extractor.extract(frames[i].color) for i in (0, 10))
    pairs, dist = match_mutual(fa.descriptors, fb.descriptors, fa.distance)
    xy = fa.keypoints[pairs[:, 0]]
    depth = frames[0].depth[np.rint(xy[:, 1]).astype(int), np.rint(xy[:, 0]).astype(int)]
    uv, z = reproject(xy.astype(np.float64), depth, K, K, T_wc[0], T_wc[10])
    err = np.where(z > 0, np.linalg.norm(uv - fb.keypoints[pairs[:, 1]], axis=1), np.nan)
    right, wrong = err <= 3.0, err > 10.0
    previous, strict = 50.0, TrackingConfig().threshold('strict_distance', fa.distance)
    assert fa.distance == 'l2' and strict < 1.0 and right.sum() >= 20 and wrong.sum() >= 20
    assert np.all(dist[wrong] <= previous), 'the Hamming value accepts every wrong match'
    assert (dist[wrong] > strict).sum() >= 3 and (dist[right] <= strict).mean() >= 0.9
