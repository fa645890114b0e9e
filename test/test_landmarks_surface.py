"""Scene landmarks for landmark voting: fused surface points, their over-segmentation into patches
(rapnet_loc.landmarks.surface) and per-image label and direction targets (rapnet_loc.landmarks.targets)."""
from types import SimpleNamespace

import numpy as np
import pytest

from rapnet_loc.errors import ConfigError, DatasetError
from rapnet_loc.landmarks.surface import SceneLandmarks, build_landmarks, fuse_points, oversegment
from rapnet_loc.landmarks.targets import direction_map, landmark_projections, render_labels

PLANE_Z = 2.02  # mid-voxel for voxels of 4 cm
F_FUSE = 200.0


def rotation(axis: str, deg: float) -> np.ndarray:
    c, s = np.cos(np.radians(deg)), np.sin(np.radians(deg))
    i, j = {'x': (1, 2), 'y': (2, 0), 'z': (0, 1)}[axis]
    R = np.eye(3)
    R[i, i], R[i, j], R[j, i], R[j, j] = c, -s, s, c
    return R


def pose(R: np.ndarray, t) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3], T[:3, 3] = R, t
    return T


def intrinsics(f: float, w: int, h: int) -> np.ndarray:
    return np.array([[f, 0, (w - 1) / 2], [0, f, (h - 1) / 2], [0, 0, 1.0]])


def plane_depth(K: np.ndarray, T_wc: np.ndarray, shape: tuple[int, int], z_plane: float) -> np.ndarray:
    """Depth image of the world plane z = z_plane."""
    i, j = np.indices(shape)
    rays = np.stack([(j - K[0, 2]) / K[0, 0], (i - K[1, 2]) / K[1, 1], np.ones(shape)], -1)
    return ((z_plane - T_wc[2, 3]) / (rays @ T_wc[2, :3])).astype(np.float32)


def grid(nx: int, ny: int, step: float) -> tuple[np.ndarray, np.ndarray]:
    g = np.meshgrid((np.arange(nx) + 0.5) * step, (np.arange(ny) + 0.5) * step, indexing='ij')
    return g[0].ravel(), g[1].ravel()


@pytest.fixture(scope='module')
def two_views():
    """Two cameras (the second shifted and turned) looking down +z at the plane z = PLANE_Z, 1 cm per pixel."""
    K, shape = intrinsics(F_FUSE, 80, 60), (60, 80)
    poses = [np.eye(4), pose(rotation('y', 5.0), [0.3, 0.05, 0.0])]
    return K, shape, poses, [plane_depth(K, T, shape, PLANE_Z) for T in poses]


def test_fuse_points_keeps_one_point_per_voxel_on_the_surface(two_views):
    K, shape, poses, depths = two_views
    depths = [d.copy() for d in depths]
    depths[1][:10] = 0  # invalid pixels and pixels beyond depth_max are ignored
    depths[1][10:20] = 7.0
    points = fuse_points(depths, [K, K], poses, voxel=0.04)
    assert points.dtype == np.float32 and points.shape[1] == 3
    assert np.allclose(points[:, 2], PLANE_Z, atol=1e-4)
    assert len(np.unique(np.floor(points / 0.04), axis=0)) == len(points)
    x, y = grid(600, 400, 0.005)  # the plane's part in view: 5 mm samples of [0, 3] x [0, 2] - (1, 1)
    plane = np.stack([x - 1, y - 1, np.full(x.size, PLANE_Z)], 1)
    seen = np.zeros(len(plane), bool)
    for T, depth in zip(poses, depths):
        pc = (plane - T[:3, 3]) @ T[:3, :3]
        j, i = np.rint(pc[:, :2] / pc[:, 2:] * F_FUSE + K[:2, 2]).astype(int).T
        inside = (i >= 0) & (i < shape[0]) & (j >= 0) & (j < shape[1])
        seen[inside] |= (depth[i[inside], j[inside]] > 0) & (depth[i[inside], j[inside]] <= 6)
    voxels = seen.sum() * 0.005 ** 2 / 0.04 ** 2
    assert 0.9 * voxels < len(points) < 1.3 * voxels


def plane_cloud() -> np.ndarray:
    x, y = grid(200, 100, 0.01)
    return np.stack([x, y, np.full(x.size, 0.55)], 1)


def test_oversegment_a_plane_into_even_patches_with_real_landmarks():
    rng = np.random.default_rng(0)
    blob = np.array([5.0, 5.0, 5.0]) + rng.normal(0, 0.01, (10, 3))
    points = np.concatenate([plane_cloud(), blob])
    scene = oversegment(points, seed_resolution=0.1, min_points=30, voxel=0.01)
    assert scene.points.dtype == np.float32 and scene.patch.dtype == np.int32 and scene.landmarks.shape[1] == 3
    assert scene.voxel == 0.01 and scene.seed_resolution == 0.1
    assert 170 <= scene.num_landmarks <= 230
    assert np.all(scene.patch[-10:] == 0) and np.all(scene.patch[:-10] > 0)
    counts = np.bincount(scene.patch, minlength=scene.num_landmarks + 1)[1:]
    assert counts.min() >= 30 and 50 <= np.median(counts) <= 200
    assert np.array_equal(np.unique(scene.patch[scene.patch > 0]), np.arange(1, scene.num_landmarks + 1))
    for n, landmark in enumerate(scene.landmarks, 1):
        at = np.flatnonzero(np.all(points == landmark, axis=1))
        assert len(at) == 1 and scene.patch[at[0]] == n
        members = points[scene.patch == n]
        assert np.linalg.norm(landmark - members.mean(0)) < 0.03
    again = oversegment(points, seed_resolution=0.1, min_points=30, voxel=0.01)
    assert np.array_equal(again.patch, scene.patch) and np.array_equal(again.landmarks, scene.landmarks)


def test_oversegment_estimates_the_voxel_when_not_given():
    assert oversegment(plane_cloud()[::2], seed_resolution=0.1).voxel == pytest.approx(0.01)


def test_patches_of_a_corner_keep_to_one_plane():
    u, v = grid(100, 100, 0.01)
    floor = np.stack([u, v, np.zeros_like(u)], 1)
    wall = np.stack([np.zeros_like(u), v, u], 1)
    points, on_wall = np.concatenate([floor, wall]), np.r_[np.zeros(len(u), bool), np.ones(len(u), bool)]

    def straddling(scene: SceneLandmarks) -> tuple[float, np.ndarray]:
        walls = np.bincount(scene.patch, on_wall, scene.num_landmarks + 1)[1:]
        counts = np.bincount(scene.patch, minlength=scene.num_landmarks + 1)[1:]
        minority = np.minimum(walls, counts - walls)
        return minority.sum() / len(points), minority / counts

    total, share = straddling(oversegment(points, seed_resolution=0.1, voxel=0.01))
    assert total < 0.05 and np.mean(share < 0.2) > 0.9
    assert straddling(oversegment(points, 0.1, voxel=0.01, normal_weight=1.0))[0] < \
        straddling(oversegment(points, 0.1, voxel=0.01, normal_weight=0.0))[0]


def test_build_landmarks_from_frames_and_render_them_without_holes(two_views):
    K, shape, poses, depths = two_views
    frames = [SimpleNamespace(depth=d, K=K, T_wc=T) for d, T in zip(depths, poses)]
    scene = build_landmarks(frames, voxel=0.02, seed_resolution=0.1, min_points=10)
    assert scene.voxel == 0.02 and scene.num_landmarks > 20
    labels, depth = render_labels(scene, K, poses[0], shape)
    assert labels.shape == depth.shape == shape and labels.dtype == np.int32 and depth.dtype == np.float32
    assert np.mean(depth > 0) > 0.99 and np.mean(labels > 0) > 0.95
    assert np.allclose(depth[depth > 0], PLANE_Z, atol=0.01)


W, H, F = 64, 48, 100.0


def two_patch_scene(G: np.ndarray) -> SceneLandmarks:
    """Plane z = 2, x in [-0.4, 0.4], y in [-0.2, 0.2] (patch 1: x < 0, 2: x > 0) and a square x, y in
    [-0.05, 0.05] at z = 1 (patch 3), 1 cm apart, moved by the rigid transform G."""
    x, y = grid(80, 40, 0.01)
    far = np.stack([x - 0.4, y - 0.2, np.full(x.size, 2.0)], 1)
    x, y = grid(10, 10, 0.01)
    near = np.stack([x - 0.05, y - 0.05, np.ones(x.size)], 1)
    patch = np.r_[np.where(far[:, 0] < 0, 1, 2), np.full(len(near), 3)].astype(np.int32)
    points = np.concatenate([far, near]) @ G[:3, :3].T + G[:3, 3]
    landmarks = np.array([[-0.2, 0, 2], [0.2, 0, 2], [0.01, 0.01, 1]]) @ G[:3, :3].T + G[:3, 3]
    return SceneLandmarks(points.astype(np.float32), patch, landmarks, 0.01, 0.1)


MOVES = [np.eye(4), pose(rotation('x', 30) @ rotation('z', -50), [1.0, -2.0, 0.5])]


@pytest.mark.parametrize('G', MOVES)
def test_render_labels_matches_the_projection_and_hides_occluded_patches(G):
    K = intrinsics(F, W, H)
    labels, depth = render_labels(two_patch_scene(G), K, G, (H, W))
    i, j = np.indices((H, W))
    X, Y = (j - K[0, 2]) / F * 2, (i - K[1, 2]) / F * 2  # where each pixel's ray meets z = 2
    near = (np.abs(X) < 0.1 - 0.03) & (np.abs(Y) < 0.1 - 0.03)
    plane = (np.abs(X) < 0.4 - 0.03) & (np.abs(Y) < 0.2 - 0.03) & ~((np.abs(X) < 0.1 + 0.03) & (np.abs(Y) < 0.13))
    outside = (np.abs(X) > 0.4 + 0.03) | (np.abs(Y) > 0.2 + 0.03)
    assert np.all(labels[near] == 3) and np.allclose(depth[near], 1.0, atol=1e-4)
    expected = np.where(X < 0, 1, 2)
    away_from_middle = plane & (np.abs(X) > 0.03)
    assert np.array_equal(labels[away_from_middle], expected[away_from_middle])
    assert np.allclose(depth[plane], 2.0, atol=1e-4)
    assert np.all(labels[outside] == 0) and np.all(depth[outside] == 0)
    assert near.sum() > 20 and away_from_middle.sum() > 300 and outside.sum() > 500


def test_dropped_points_occlude_but_render_as_background():
    scene = two_patch_scene(np.eye(4))
    scene.patch[scene.patch == 3] = 0
    labels, depth = render_labels(scene, intrinsics(F, W, H), np.eye(4), (H, W))
    assert labels[H // 2, W // 2] == 0 and depth[H // 2, W // 2] == pytest.approx(1.0)


@pytest.mark.parametrize('G', MOVES)
def test_direction_map_points_at_the_landmark_projections(G):
    K = intrinsics(F, W, H)
    scene = two_patch_scene(G)
    labels, _ = render_labels(scene, K, G, (H, W))
    uv, z = landmark_projections(scene.landmarks, K, G)
    assert np.allclose(uv, [[21.5, 23.5], [41.5, 23.5], [32.5, 24.5]]) and np.allclose(z, [2, 2, 1])
    directions = direction_map(labels, scene.landmarks, K, G)
    assert directions.shape == (H, W, 2) and directions.dtype == np.float32
    fg = labels > 0
    assert np.allclose(np.linalg.norm(directions[fg], axis=1), 1, atol=1e-5)
    assert np.all(directions[~fg] == 0)
    for i, j in [(20, 15), (30, 15), (24, 40), (22, 30), (27, 35)]:
        assert labels[i, j] > 0
        target = uv[labels[i, j] - 1]
        assert np.arctan2(*directions[i, j, ::-1]) == pytest.approx(np.arctan2(target[1] - i, target[0] - j), abs=1e-5)


def test_direction_map_outside_the_image_behind_the_camera_and_at_the_landmark():
    K = intrinsics(F, W, H)
    labels = np.zeros((H, W), np.int32)
    labels[:, :20], labels[:, 20:40], labels[:, 40:] = 1, 2, 3
    labels[24, 30:34] = 1
    landmarks = np.array([[0.005, 0.005, 1.0], [0.0, 0.0, -1.0], [3.0, 0.0, 2.0]])  # behind: 2; far right: 3
    assert np.allclose(landmark_projections(landmarks, K, np.eye(4))[0][[0, 2]], [[32, 24], [181.5, 23.5]])
    directions = direction_map(labels, landmarks, K, np.eye(4))
    assert np.all(directions[labels == 2] == 0)
    assert np.all(directions[24, 32] == 0)
    assert np.allclose(directions[24, 31], [1, 0]) and np.allclose(directions[24, 33], [-1, 0])
    assert np.all(directions[:, 40:, 0] > 0.95) and np.allclose(directions[24, 40:], [1, 0], atol=0.01)


def test_bad_arguments_and_missing_depth_are_reported():
    points = plane_cloud()
    with pytest.raises(ConfigError, match='voxel must be > 0'):
        fuse_points([np.ones((4, 4), np.float32)], [np.eye(3)], [np.eye(4)], voxel=0.0)
    with pytest.raises(ConfigError, match='seed_resolution .* 0.02'):
        oversegment(points, seed_resolution=0.02, voxel=0.02)
    with pytest.raises(ConfigError, match='min_points must be >= 1, got 0'):
        oversegment(points, min_points=0)
    frames = [SimpleNamespace(depth=np.zeros((6, 8), np.float32), K=intrinsics(5.0, 8, 6), T_wc=np.eye(4))] * 3
    with pytest.raises(DatasetError, match='no valid depth .* 3 frames'):
        build_landmarks(frames)
    with pytest.raises(DatasetError, match='no patch has 100000 points'):
        oversegment(points, seed_resolution=0.1, min_points=100000)
    with pytest.raises(DatasetError, match='no points'):
        oversegment(np.empty((0, 3)))
