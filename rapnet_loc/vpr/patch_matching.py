"""Patch-NetVLAD's re-ranking: mutual nearest neighbours between two images' patch descriptors, and the spatial
scores that turn them into a similarity (Hausler et al., CVPR 2021, Sec. 3.4-3.5; larger is more similar here).

Patches are indexed row-major over their grid (``rapnet_loc.vpr.netvlad_model.patch_grid``); ``grid_indices``
gives each patch's (column, row) on the grid and ``patch_centres`` its centre in image pixels,
((index * stride) + size / 2) * cell, where ``cell`` is the backbone's stride in pixels.

- RANSAC scoring: a homography fitted to the mutual matches' patch centres (OpenCV RANSAC, reprojection tolerance
  1.5 x patch stride x cell pixels); the score is its number of inliers over the number of query patches (0 with
  fewer than 4 matches).
- Rapid spatial scoring: with d_i = (dx_i, dy_i) the grid displacement of match i and mean displacement (dx, dy),
  s = (1 / n_q) * sum_i [ (x_max - |dx_i - dx|)^2 + (y_max - |dy_i - dy|)^2 ], x_max and y_max the largest column
  and row index of the grid: matches that move coherently score close to x_max^2 + y_max^2 each.
- Multi-scale fusion, as the authors' ``normalise_func``: each patch size's scores are standardised over the
  shortlist (minus their mean, over their standard deviation; a size whose scores are all equal adds nothing),
  then summed with the preset's weights. With one patch size the raw scores are kept: standardising would not
  change their order, and raw scores stay comparable from one query to the next.
"""
from __future__ import annotations

import cv2
import numpy as np

RANSAC_TOLERANCE = 1.5      # patch strides
MIN_HOMOGRAPHY_MATCHES = 4


def mutual_nearest(query: np.ndarray, other: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mutual nearest neighbours between L2-normalised descriptors ``query`` (Nq, P) and ``other`` (No, P):
    the indices (M,) into each, matched pairwise."""
    similarity = np.asarray(query, np.float32) @ np.asarray(other, np.float32).T
    forward = similarity.argmax(axis=1)        # query -> other
    backward = similarity.argmax(axis=0)       # other -> query
    q = np.flatnonzero(backward[forward] == np.arange(len(query)))
    return q, forward[q]


def grid_indices(rows: int, cols: int) -> np.ndarray:
    """(rows * cols, 2) int (column, row) of each patch of a rows x cols grid, row-major."""
    r, c = np.divmod(np.arange(rows * cols), cols)
    return np.stack([c, r], axis=1)


def patch_centres(rows: int, cols: int, size: int, stride: int, cell: int) -> np.ndarray:
    """(rows * cols, 2) float (x, y) image-pixel centres of the patches of the grid (see the module doc)."""
    return (grid_indices(rows, cols) * stride + size / 2.0) * cell


def ransac_score(query_xy: np.ndarray, other_xy: np.ndarray, n_query: int, tolerance: float) -> float:
    """Homography inliers among matched patch centres (M, 2) over ``n_query`` (see the module doc)."""
    if len(query_xy) < MIN_HOMOGRAPHY_MATCHES:
        return 0.0
    _, mask = cv2.findHomography(other_xy.astype(np.float32), query_xy.astype(np.float32), cv2.RANSAC,
                                 ransacReprojThreshold=tolerance)
    return 0.0 if mask is None else float(mask.sum()) / n_query


def rapid_spatial_score(query_ij: np.ndarray, other_ij: np.ndarray, n_query: int, grid_max: np.ndarray) -> float:
    """Patch-NetVLAD's rapid spatial score of matched grid indices (M, 2) (see the module doc); ``grid_max`` is
    (x_max, y_max)."""
    if len(query_ij) == 0:
        return 0.0
    shift = (other_ij - query_ij).astype(np.float64)
    residual = np.abs(shift - shift.mean(axis=0))
    return float(np.square(np.asarray(grid_max, np.float64) - residual).sum()) / n_query


def fuse(scores: np.ndarray, weights: list[float]) -> np.ndarray:
    """(N,) fused scores of N candidates from their (N, S) per-patch-size scores (see the module doc)."""
    scores = np.asarray(scores, np.float64)
    if scores.shape[1] == 1:
        return scores[:, 0] * weights[0]
    centred = scores - scores.mean(axis=0)
    spread = scores.std(axis=0)
    varies = spread > 1e-9 * (1.0 + np.abs(scores).max(axis=0))       # a size that scores all alike adds nothing
    return (centred[:, varies] / spread[varies]) @ np.asarray(weights, np.float64)[varies]
