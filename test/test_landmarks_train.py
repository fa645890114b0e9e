"""VS-Net training targets under the random similarity warp (rapnet_loc.landmarks.train.warped): in the warped label
and direction maps each cell still sees a landmark whose (warped) projection is as near as before, and its
direction points at that projection."""
from types import SimpleNamespace

import numpy as np
from test_landmarks_surface import intrinsics, plane_depth, pose, rotation

from rapnet_loc.landmarks.surface import build_landmarks
from rapnet_loc.landmarks.targets import direction_map, landmark_projections, render_labels
from rapnet_loc.geometry import scaled_intrinsics
from rapnet_loc.landmarks.train import VSNetTrainConfig, warped

STRIDE = 4
SHAPE = (96, 128)


def draw_warp(rng: np.random.Generator, cfg: VSNetTrainConfig) -> np.ndarray:
    """(2, 3) grid warp [R | t_g] of the draws ``warped`` makes from ``rng`` (its module doc's formula)."""
    scale = (1 + cfg.warp_scale) ** rng.uniform(-1, 1)
    angle = np.radians(rng.uniform(-cfg.warp_rotation, cfg.warp_rotation))
    R = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    centre = np.array([(SHAPE[1] - 1) / 2, (SHAPE[0] - 1) / 2])
    t = centre - R @ centre + rng.uniform(-cfg.warp_shift, cfg.warp_shift, 2) * (SHAPE[1], SHAPE[0])
    c = np.full(2, (STRIDE - 1) / 2)
    return np.hstack([R, ((R @ c + t - c) / STRIDE)[:, None]])


def test_warped_targets_follow_the_landmarks():
    K = intrinsics(160.0, SHAPE[1], SHAPE[0])
    T_wc = pose(rotation('x', 10.0), [0.1, -0.1, 0.0])
    frames = [SimpleNamespace(depth=plane_depth(K, T_wc, SHAPE, 2.0), K=K, T_wc=T_wc)]
    landmarks = build_landmarks(frames, voxel=0.02, seed_resolution=0.25, min_points=10)
    K_grid = scaled_intrinsics(K, STRIDE)
    labels, _ = render_labels(landmarks, K_grid, T_wc, (SHAPE[0] // STRIDE, SHAPE[1] // STRIDE))
    directions = direction_map(labels, landmarks.landmarks, K_grid, T_wc).transpose(2, 0, 1)
    uv, _ = landmark_projections(landmarks.landmarks, K_grid, T_wc)

    def reach(labels: np.ndarray, uv: np.ndarray) -> np.ndarray:
        rows, cols = np.nonzero(labels > 0)
        return np.linalg.norm(uv[labels[rows, cols] - 1] - np.stack([cols, rows], 1), axis=1)

    cfg = VSNetTrainConfig('', '', warp_scale=0.3, warp_rotation=20.0, warp_shift=0.1)
    for seed in range(4):
        image = np.zeros((1, *SHAPE, 3), np.uint8)
        out_image, (got_labels,), (got_dirs,) = warped(image, labels[None].astype(np.int64), directions[None], cfg,
                                                       STRIDE, np.random.default_rng(seed))
        warp = draw_warp(np.random.default_rng(seed), cfg)
        scale = np.sqrt(abs(np.linalg.det(warp[:, :2])))
        moved = uv @ warp[:, :2].T + warp[:, 2]
        assert (got_labels == -1).any() and (got_labels > 0).mean() > 0.4
        assert np.median(reach(got_labels, moved)) < 1.5 * scale * np.median(reach(labels, uv)) + 0.5
        rows, cols = np.nonzero(got_labels > 0)
        to = moved[got_labels[rows, cols] - 1] - np.stack([cols, rows], 1)
        far = np.linalg.norm(to, axis=1) > 2      # nearest-neighbour resampling moves a cell by up to half a cell
        cos = (to[far] / np.linalg.norm(to[far], axis=1, keepdims=True) * got_dirs[:, rows[far], cols[far]].T).sum(1)
        assert np.median(cos) > 0.99 and np.percentile(cos, 5) > 0.9, seed
