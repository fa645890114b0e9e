"""VS-Net landmark localization from a segmentation and voting map: each segment (pixels labelled with one landmark
id) votes, pixel by pixel, for the direction of its landmark's projection; the votes are intersected into one 2-D
position per landmark, and the 2-D/3-D landmark correspondences give the camera pose.

Vote intersection (per segment, as in VS-Net / PVNet): RANSAC over ``hypotheses`` intersections of the rays
``p_i + t v_i`` of random pixel pairs of the segment (both rays must point towards the intersection; near-parallel pairs
give no hypothesis); a pixel supports a hypothesis ``h`` when the cosine between its vote and ``h - p_i`` exceeds
``inlier_cos``. The best-supported hypothesis is refined by the least-squares intersection (minimum sum of squared
perpendicular distances, ``sum(I - v v^T) x = sum(I - v v^T) p``) of the votes that support it and whose ray passes
within ``refine_px`` of it, twice (the second time around the first intersection); a landmark with fewer than
``min_votes`` such votes is dropped. The sum of the refining votes' ``I - v v^T`` is the information matrix of the
intersection (its inverse covariance, up to the votes' common variance): votes from all sides fix a landmark in
every direction, nearly parallel ones only across them. The support test matters for pixels near the landmark: any
ray from a pixel within ``refine_px`` passes within ``refine_px``, so the distance alone would let wrong votes
(outliers) near the landmark bias it by pixels.

Everything runs in torch on the device of the inputs, for all segments at once: pixels are sorted by segment, every
pixel is tested against the hypotheses of its own segment (a gather) and the support of each hypothesis is summed per
segment with ``index_add_``. The work is ``pixels x hypotheses`` and is done in chunks of hypotheses to bound memory.

Pose: RANSAC PnP (OpenCV, EPnP minimal solver) with a ``reprojection_px`` threshold, then the repository's
Gauss-Newton pose refinement (``rapnet_loc.slam.optimizer.optimize_pose``) on the RANSAC inliers, each landmark
weighted by the information of its intersection (``vote_information``), and the covariance of the residuals
(``pose_covariance``).
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

from rapnet_loc.errors import ConfigError
from rapnet_loc.geometry import invert
from rapnet_loc.io.types import CameraInfo
from rapnet_loc.landmarks.base import PoseEstimate
from rapnet_loc.slam.camera import Camera
from rapnet_loc.slam.optimizer import CHI2_MONO, optimize_pose, pose_covariance

PARALLEL_SIN = 1e-3  # |sin| of the angle between two votes below which their rays give no hypothesis
MIN_CONDITION = 1e-6  # smallest det / trace^2 of a landmark's 2x2 least-squares system (rays not all parallel)
CHUNK_ELEMENTS = 1 << 21  # pixel-hypothesis pairs scored at once
REFINE_ROUNDS = 2  # least-squares intersections, each with the votes selected around the previous one
COLLINEAR = 1e-6  # second / first singular value of centred 3-D inliers below which they are a line


def _is_int(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _is_real(value: object) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool) \
        and bool(np.isfinite(value))


_RULES = (
    ('hypotheses', 'an integer >= 1', lambda v: _is_int(v) and v >= 1),
    ('inlier_cos', 'a number in (0, 1)', lambda v: _is_real(v) and 0 < v < 1),
    ('refine_px', 'a number > 0', lambda v: _is_real(v) and v > 0),
    ('min_votes', 'an integer >= 2', lambda v: _is_int(v) and v >= 2),
    ('min_segment', 'an integer >= 2', lambda v: _is_int(v) and v >= 2),
    ('reprojection_px', 'a number > 0', lambda v: _is_real(v) and v > 0),
    ('pnp_iterations', 'an integer >= 1', lambda v: _is_int(v) and v >= 1),
    ('min_correspondences', 'an integer >= 4', lambda v: _is_int(v) and v >= 4),
    ('vote_information', 'true or false', lambda v: isinstance(v, (bool, np.bool_))),
)


@dataclass
class VotingConfig:
    """Options of vote intersection and pose estimation (module doc).

    Attributes:
        hypotheses: RANSAC hypotheses per landmark.
        inlier_cos: a vote supports a hypothesis when its cosine to the hypothesis' direction exceeds this. The
            paper's 0.999 (per pixel at full resolution) left most landmarks of a stride-4 output grid without
            enough votes; 0.99 was chosen on the 7-Scenes dev split (BENCHMARKS.md, session 17).
        refine_px: the votes that support the best hypothesis and whose ray passes within this many pixels of it
            refine it.
        min_votes: landmarks with fewer refining votes are dropped.
        min_segment: segments with fewer pixels are dropped before voting (``vsnet``: cells of the network's
            output grid, 8 x 8 pixels of a 640 x 480 image; 5 was chosen on the training frames of a synthetic
            scene, where with 20 landmarks a few metres away covered too few cells and were dropped).
        reprojection_px: RANSAC PnP inlier threshold (pixels), also the inlier test of the refinement.
        pnp_iterations: RANSAC PnP iterations.
        min_correspondences: no pose with fewer landmarks, or fewer inliers (10, chosen with ``inlier_cos`` on
            the dev split: the looser votes find more landmarks, and 10 keeps wrong poses out).
        vote_information: weigh each landmark in the pose refinement by the information matrix of its vote
            intersection (``LandmarkVotes.information``); false: all landmarks alike.
    """

    hypotheses: int = 256
    inlier_cos: float = 0.99
    refine_px: float = 6.0
    min_votes: int = 5
    min_segment: int = 5
    reprojection_px: float = 10.0
    pnp_iterations: int = 2000
    min_correspondences: int = 10
    vote_information: bool = True

    def __post_init__(self) -> None:
        for name, rule, ok in _RULES:
            if not ok(getattr(self, name)):
                raise ConfigError(f'voting option {name} must be {rule}, got {getattr(self, name)!r}')


@dataclass
class LandmarkVotes:
    """Landmarks located by ``intersect_votes`` (numpy, on the CPU).

    Attributes:
        ids: (L,) int64 landmark ids, ascending.
        points: (L, 2) float64 pixel positions (x, y) of the landmarks (may lie outside the image).
        votes: (L,) int64 number of votes of each least-squares intersection.
        information: (L, 2, 2) float64 information matrix of each intersection: the sum of ``I - v v^T`` over
            its votes v (pixels^-2, for votes of unit variance).
    """

    ids: np.ndarray
    points: np.ndarray
    votes: np.ndarray
    information: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)


def _cross(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """z component of the cross products of 2-D vectors (..., 2)."""
    return a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]


def _hypotheses(p: torch.Tensor, v: torch.Tensor, starts: torch.Tensor, sizes: torch.Tensor, n: int,
                generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(L, n, 2) intersections of the rays of n random pixel pairs of each segment, and (L, n) bool: valid (rays
    not near-parallel and both pointing towards the intersection). Pixels are sorted by segment: segment l is
    ``p[starts[l]:starts[l] + sizes[l]]``."""
    device = generator.device if generator is not None else p.device
    u = torch.rand((len(sizes), n, 2), generator=generator, device=device, dtype=torch.float64).to(p.device)
    size = sizes[:, None]
    i = torch.minimum((u[..., 0] * size).long(), size - 1)
    j = (i + 1 + torch.minimum((u[..., 1] * (size - 1)).long(), size - 2)) % size
    i, j = i + starts[:, None], j + starts[:, None]
    p_i, v_i, p_j, v_j = p[i], v[i], p[j], v[j]
    det = _cross(v_i, v_j)
    d = p_j - p_i
    safe = torch.where(det.abs() > PARALLEL_SIN, det, torch.ones_like(det))
    t, s = _cross(d, v_j) / safe, _cross(d, v_i) / safe
    h = p_i + t[..., None] * v_i
    valid = (det.abs() > PARALLEL_SIN) & (t > 0) & (s > 0) & torch.isfinite(h).all(-1)
    return h, valid


def _support(p: torch.Tensor, v: torch.Tensor, label: torch.Tensor, h: torch.Tensor, cos: float) -> torch.Tensor:
    """(L, n) number of pixels of each segment whose vote points within ``acos(cos)`` of each of its hypotheses
    h (L, n, 2): ``v . d > cos |d|`` for ``d = h - p``, tested as ``v . d > 0`` and ``(v . d)^2 > cos^2 |d|^2``."""
    n_seg, n = h.shape[:2]
    count = torch.zeros((n_seg, n), dtype=p.dtype, device=p.device)
    hx, hy = h[..., 0].contiguous(), h[..., 1].contiguous()
    px, py, vx, vy = p[:, :1], p[:, 1:], v[:, :1], v[:, 1:]
    step = max(1, CHUNK_ELEMENTS // max(len(p), 1))
    for k in range(0, n, step):
        dx = hx[:, k:k + step][label] - px
        dy = hy[:, k:k + step][label] - py
        dot = dx * vx + dy * vy
        inlier = (dot > 0) & (dot * dot > cos * cos * (dx * dx + dy * dy))
        count[:, k:k + step].index_add_(0, label, inlier.to(p.dtype))
    return count


def _refine(p: torch.Tensor, v: torch.Tensor, label: torch.Tensor, centre: torch.Tensor, found: torch.Tensor,
            cfg: VotingConfig) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Least-squares intersection (L, 2) of the votes (p, v: (M, 2) float64) of each segment that support
    ``centre`` (L, 2) and whose ray passes within ``refine_px`` of it, their number (L,), their information
    matrices (L, 2, 2) and (L,) bool: solvable (``found`` and the rays not all parallel)."""
    diff = centre[label] - p
    use = ((diff * v).sum(1) > cfg.inlier_cos * torch.linalg.vector_norm(diff, dim=1)) \
        & (_cross(v, diff).abs() <= cfg.refine_px) & found[label]
    index, n = label[use], len(centre)
    a = torch.eye(2, dtype=p.dtype, device=p.device) - v[use, :, None] * v[use, None, :]
    A = torch.zeros((n, 2, 2), dtype=p.dtype, device=p.device).index_add_(0, index, a)
    b = torch.zeros((n, 2), dtype=p.dtype, device=p.device).index_add_(0, index, (a @ p[use, :, None])[..., 0])
    det = A[:, 0, 0] * A[:, 1, 1] - A[:, 0, 1] * A[:, 1, 0]
    well = found & (det > MIN_CONDITION * (A[:, 0, 0] + A[:, 1, 1]) ** 2)
    safe = torch.where(well, det, torch.ones_like(det))
    points = torch.stack([A[:, 1, 1] * b[:, 0] - A[:, 0, 1] * b[:, 1],
                          A[:, 0, 0] * b[:, 1] - A[:, 1, 0] * b[:, 0]], dim=1) / safe[:, None]
    return points, torch.bincount(index, minlength=n), A, well & torch.isfinite(points).all(1)


@torch.no_grad()
def intersect_votes(xy: torch.Tensor, votes: torch.Tensor, segment: torch.Tensor, cfg: VotingConfig,
                    generator: torch.Generator | None = None) -> LandmarkVotes:
    """Pixel position of every landmark from its segment's votes (module doc).

    Args:
        xy: (M, 2) float pixel centres (x, y).
        votes: (M, 2) float vote directions (normalised here; zero or NaN votes support nothing).
        segment: (M,) int64 landmark id of each pixel, 0 for background (ignored).
        cfg: ``min_segment``, ``hypotheses``, ``inlier_cos``, ``refine_px`` and ``min_votes`` are used.
        generator: random source of the hypotheses (on any device); the result is a function of its state (on a GPU
            up to the rounding of sums in another order).
    Returns:
        the landmarks kept, ascending by id.
    """
    if xy.shape != votes.shape or xy.ndim != 2 or xy.shape[1] != 2 or segment.shape != xy.shape[:1]:
        raise ValueError(f'xy and votes must be (M, 2) and segment (M,), got {tuple(xy.shape)}, '
                         f'{tuple(votes.shape)} and {tuple(segment.shape)}')
    dtype = xy.dtype if xy.is_floating_point() else torch.float32
    ids, inverse, sizes = torch.unique(segment, return_inverse=True, return_counts=True)
    kept = (ids > 0) & (sizes >= cfg.min_segment)
    pixels = kept[inverse]
    label = (torch.cumsum(kept, 0) - 1)[inverse[pixels]]
    ids, sizes = ids[kept], sizes[kept]
    order = torch.argsort(label, stable=True)
    label = label[order]
    p = xy[pixels][order].to(dtype)
    v = votes[pixels][order].to(dtype)
    v = v / torch.linalg.vector_norm(v, dim=1, keepdim=True).clamp_min(1e-12)
    starts = torch.cumsum(sizes, 0) - sizes

    h, valid = _hypotheses(p, v, starts, sizes, cfg.hypotheses, generator)
    support = torch.where(valid, _support(p, v, label, h, cfg.inlier_cos), -1.0)
    best = support.argmax(1)
    points = h[torch.arange(len(ids), device=h.device), best].double()
    well = support.gather(1, best[:, None])[:, 0] >= 0
    p, v = p.double(), v.double()
    for _ in range(REFINE_ROUNDS):
        points, n_votes, information, well = _refine(p, v, label, points, well, cfg)
    keep = (n_votes >= cfg.min_votes) & well
    return LandmarkVotes(ids[keep].cpu().numpy().astype(np.int64), points[keep].cpu().numpy(),
                         n_votes[keep].cpu().numpy().astype(np.int64), information[keep].cpu().numpy())


def _positive(w: np.ndarray) -> np.ndarray:
    """(L,) bool: finite and positive weights (L,), or finite positive definite matrices (L, 2, 2)."""
    if w.ndim == 1:
        return np.isfinite(w) & (w > 0)
    if w.ndim != 3 or w.shape[1:] != (2, 2):
        raise ValueError(f'weights must be (L,) or (L, 2, 2), got {w.shape}')
    finite = np.isfinite(w).all((1, 2))
    safe = np.where(finite[:, None, None], w, 0.0)
    return finite & (safe[:, 0, 0] > 0) & (safe[:, 0, 0] * safe[:, 1, 1] - safe[:, 0, 1] * safe[:, 1, 0] > 0)


def solve_pose(points_2d: np.ndarray, points_3d: np.ndarray, K: np.ndarray, cfg: VotingConfig,
               weights: np.ndarray | None = None) -> PoseEstimate | None:
    """Camera pose from 2-D/3-D landmark correspondences (module doc).

    Correspondences with a non-finite coordinate or weight, or a weight that is not positive (definite), are
    ignored. The refinement re-tests every RANSAC inlier: one stays an inlier while its (weighted) reprojection
    error is within ``reprojection_px``; weights are scaled to a mean of 1 (mean half trace for matrices), so that
    the threshold holds for a correspondence of average weight.

    Args:
        points_2d: (L, 2) undistorted pixel positions; points_3d: (L, 3) world positions; K: (3, 3) intrinsics.
        weights: (L,) relative confidence (information) of each correspondence, or (L, 2, 2) information matrices
            of the 2-D positions (``LandmarkVotes.information``); only ratios matter. None: all equal.
    Returns:
        the pose (covariance from the residuals of the inliers), or None with fewer than ``min_correspondences``
        correspondences or inliers, when the inliers' 3-D points are collinear (pose not determined) or when
        the solver fails.
    """
    points_2d = np.asarray(points_2d, dtype=np.float64).reshape(-1, 2)
    points_3d = np.asarray(points_3d, dtype=np.float64).reshape(-1, 3)
    w = np.ones(len(points_2d)) if weights is None else np.asarray(weights, dtype=np.float64)
    finite = np.isfinite(points_2d).all(1) & np.isfinite(points_3d).all(1) & _positive(w)
    points_2d, points_3d, w = points_2d[finite], points_3d[finite], w[finite]
    if len(points_2d) < cfg.min_correspondences:
        return None
    K = np.asarray(K, dtype=np.float64)
    try:
        ok, rvec, tvec, inliers = cv2.solvePnPRansac(
            points_3d, points_2d, K, None, iterationsCount=cfg.pnp_iterations,
            reprojectionError=cfg.reprojection_px, confidence=0.99, flags=cv2.SOLVEPNP_EPNP)
    except cv2.error:
        return None
    if not ok or inliers is None or len(inliers) < cfg.min_correspondences:
        return None
    inliers = inliers.reshape(-1)
    T_cw = np.eye(4)
    T_cw[:3, :3] = cv2.Rodrigues(rvec)[0]
    T_cw[:3, 3] = tvec.reshape(3)
    camera = Camera.from_info(CameraInfo(0, 0, K))  # the image size is not used by the residuals
    info = w[inliers] / (w[inliers].mean() if w.ndim == 1 else np.trace(w[inliers], axis1=1, axis2=2).mean() / 2)
    no_depth = np.full(len(inliers), np.nan)
    result = optimize_pose(T_cw, points_3d[inliers], points_2d[inliers], no_depth,
                           info * CHI2_MONO / cfg.reprojection_px ** 2, camera)
    keep = inliers[result.inliers]
    if len(keep) < cfg.min_correspondences or not np.isfinite(result.T_cw).all():
        return None
    singular = np.linalg.svd(points_3d[keep] - points_3d[keep].mean(0), compute_uv=False)
    if singular[1] <= COLLINEAR * singular[0]:
        return None
    covariance = pose_covariance(result.T_cw, points_3d[keep], points_2d[keep], np.full(len(keep), np.nan),
                                 info[result.inliers], camera)
    if not np.isfinite(covariance).all():
        return None
    return PoseEstimate(invert(result.T_cw), covariance, len(keep))
