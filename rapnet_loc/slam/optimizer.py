"""Pose-only optimisation of a tracked frame (ORB-SLAM2 ``Optimizer::PoseOptimization``), windowed bundle
adjustment (``Optimizer::LocalBundleAdjustment``) and their residual model.

Measurements: a keypoint ``(u, v)`` matched to a map point, plus, when the keypoint has depth, ORB-SLAM2's
virtual right coordinate ``u_right = u - bf / z``; the residual is ``observed - projected`` (3 rows, or 2 for a
keypoint without depth), weighted by ``inv_sigma2 = 1 / scale(level)**2``. Outliers are classified by the
chi-square test at 95 % (5.991 for 2 dof, 7.815 for 3 dof). Pose-only optimisation also takes a full 2 x 2
information matrix per observation without depth (an anisotropic uncertainty, such as that of a landmark found by
intersecting votes, ``rapnet_loc.landmarks.voting``).

Solver: a compact Gauss-Newton on se(3) with analytic Jacobians and a Huber kernel applied by iteratively
reweighted least squares. The problem has 6 unknowns and a few hundred residuals and runs two or three times per
frame, so building the 6x6 normal equations in numpy costs tens of microseconds per iteration, whereas
``scipy.optimize.least_squares`` would add milliseconds of Python call overhead per solve for no gain in robustness
(the pose starts close to the optimum from the motion model or PnP).

Bundle adjustment has thousands of unknowns (a pose step per free keyframe, three coordinates per point) with a
sparse Jacobian; there ``scipy.optimize.least_squares`` (trust region, LSMR on the analytic sparse Jacobian) is the
right tool and its overhead is small next to the solve.

Pose update: ``T_cw <- [exp(omega) | v] @ T_cw`` for a step ``delta = (omega, v)``, a retraction of SE(3) that
agrees with the exponential map to first order.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy.optimize import least_squares
from scipy.sparse import csr_matrix

from rapnet_loc.slam.camera import Camera
from rapnet_loc.slam.frame import Frame

CHI2_MONO = 5.991
CHI2_STEREO = 7.815
ROUNDS = 4
ITERATIONS = 10
ROBUST_ROUNDS = 2
CONVERGED = 1e-10  # squared step norm (rad^2 + m^2) that ends a round early


def so3_exp(omega: np.ndarray) -> np.ndarray:
    """Rotation matrices (..., 3, 3) of rotation vectors (..., 3) (Rodrigues)."""
    omega = np.asarray(omega, dtype=np.float64)
    theta = np.linalg.norm(omega, axis=-1)[..., None, None]
    k = np.zeros(omega.shape[:-1] + (3, 3))
    k[..., 0, 1], k[..., 0, 2], k[..., 1, 2] = -omega[..., 2], omega[..., 1], -omega[..., 0]
    k = k - np.swapaxes(k, -1, -2)
    small = theta < 1e-8
    safe = np.where(small, 1.0, theta)
    a = np.where(small, 1.0, np.sin(safe) / safe)
    b = np.where(small, 0.5, (1.0 - np.cos(safe)) / safe**2)
    return np.eye(3) + a * k + b * (k @ k)


def retract(T_cw: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """Pose(s) (..., 4, 4) updated by steps (..., 6) ``(omega, v)``: ``[exp(omega) | v] @ T_cw``."""
    step = np.zeros(delta.shape[:-1] + (4, 4))
    step[..., :3, :3] = so3_exp(delta[..., :3])
    step[..., :3, 3] = delta[..., 3:]
    step[..., 3, 3] = 1.0
    return step @ T_cw


def orthonormalize(T: np.ndarray) -> np.ndarray:
    """Copy of a (4, 4) pose whose rotation is projected onto SO(3) (nearest rotation, by SVD).

    Chained products such as the motion model's ``velocity @ T_cw`` amplify rounding errors geometrically;
    poses are re-projected whenever they are estimated.
    """
    u, _, vt = np.linalg.svd(T[:3, :3])
    out = np.array(T, dtype=np.float64)
    out[:3, :3] = u @ np.diag([1.0, 1.0, np.linalg.det(u @ vt)]) @ vt
    return out


def project_residuals(points_c: np.ndarray, uv: np.ndarray, u_right: np.ndarray, camera: Camera,
                      with_jacobian: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
    """Residuals ``observed - projected`` of points in the camera frame and their derivative w.r.t. the point.

    Args:
        points_c: (M, 3) points in the camera frame (z > 0).
        uv: (M, 2) observed undistorted pixels; u_right: (M,) observed right coordinates, NaN for none.
    Returns:
        (M, 3) residuals (third column 0 where ``u_right`` is NaN), and (M, 3, 3) derivatives of the
        *projection* ``(u, v, u_right)`` w.r.t. ``points_c`` (third row 0 where ``u_right`` is NaN), or None.
    """
    x, y, z = points_c[:, 0], points_c[:, 1], points_c[:, 2]
    inv_z = 1.0 / z
    u = camera.fx * x * inv_z + camera.cx
    v = camera.fy * y * inv_z + camera.cy
    stereo = ~np.isnan(u_right)
    e = np.zeros((len(points_c), 3))
    e[:, 0] = uv[:, 0] - u
    e[:, 1] = uv[:, 1] - v
    e[stereo, 2] = u_right[stereo] - (u[stereo] - camera.bf * inv_z[stereo])
    if not with_jacobian:
        return e, None
    inv_z2 = inv_z * inv_z
    d = np.zeros((len(points_c), 3, 3))
    d[:, 0, 0] = camera.fx * inv_z
    d[:, 0, 2] = -camera.fx * x * inv_z2
    d[:, 1, 1] = camera.fy * inv_z
    d[:, 1, 2] = -camera.fy * y * inv_z2
    d[:, 2, 0] = d[:, 0, 0]
    d[:, 2, 2] = d[:, 0, 2] + camera.bf * inv_z2
    d[~stereo, 2, :] = 0.0
    return e, d


def pose_jacobian(points_c: np.ndarray, d_proj: np.ndarray) -> np.ndarray:
    """(M, 3, 6) derivative of the projection w.r.t. a left step ``(omega, v)`` of ``T_cw``.

    ``d p_c / d omega = -[p_c]_x`` and ``d p_c / d v = I``, so a row ``g`` of ``d_proj`` (M, 3, 3, from
    ``project_residuals``) gives ``(p_c x g, g)``.
    """
    x, y, z = (points_c[:, k, None] for k in range(3))
    gx, gy, gz = d_proj[:, :, 0], d_proj[:, :, 1], d_proj[:, :, 2]
    J = np.empty(d_proj.shape[:2] + (6,))
    J[:, :, 0] = y * gz - z * gy
    J[:, :, 1] = z * gx - x * gz
    J[:, :, 2] = x * gy - y * gx
    J[:, :, 3:] = d_proj
    return J


def chi2_thresholds(u_right: np.ndarray) -> np.ndarray:
    """(M,) chi-square outlier thresholds: 7.815 for stereo-like (depth) observations, 5.991 for monocular ones."""
    return np.where(np.isnan(u_right), CHI2_MONO, CHI2_STEREO)


def _information(inv_sigma2: np.ndarray) -> np.ndarray:
    """(M,) scalar information as given, or (M, 2, 2) matrices of (u, v) padded to (M, 3, 3) (the right
    coordinate gets none: matrices are for observations without depth)."""
    info = np.asarray(inv_sigma2, dtype=np.float64)
    if info.ndim == 1:
        return info
    if info.ndim != 3 or info.shape[1:] != (2, 2):
        raise ValueError(f'information must be (M,) or (M, 2, 2), got {info.shape}')
    padded = np.zeros((len(info), 3, 3))
    padded[:, :2, :2] = info
    return padded


def _scaled(info: np.ndarray, factor: np.ndarray) -> np.ndarray:
    """Information (M,) or (M, 3, 3) times a factor (M,) per observation."""
    return info * factor.reshape((-1,) + (1,) * (info.ndim - 1))


def _chi2(e: np.ndarray, info: np.ndarray) -> np.ndarray:
    """(M,) squared errors ``e^T info e`` of residuals e (M, 3) under information (M,) or (M, 3, 3)."""
    if info.ndim == 1:
        return info * (e * e).sum(1)
    return np.einsum('mi,mij,mj->m', e, info, e)


def _weighted_jacobian(J: np.ndarray, info: np.ndarray) -> np.ndarray:
    """(3M, 6) ``info @ J`` for Jacobians J (M, 3, 6) and information (M,) or (M, 3, 3), rows flattened."""
    return (J * info[:, None, None] if info.ndim == 1 else info @ J).reshape(-1, 6)


def huber_weights(chi2: np.ndarray, delta2: np.ndarray) -> np.ndarray:
    """(M,) IRLS weights of the Huber kernel with threshold ``sqrt(delta2)`` for squared errors ``chi2``."""
    return np.where(chi2 <= delta2, 1.0, np.sqrt(delta2 / np.maximum(chi2, 1e-300)))


@dataclass
class PoseResult:
    """Outcome of ``optimize_pose``: ``T_cw`` (4, 4), ``inliers`` (M,) bool and ``chi2`` (M,) weighted errors."""

    T_cw: np.ndarray
    inliers: np.ndarray
    chi2: np.ndarray

    @property
    def n_inliers(self) -> int:
        return int(self.inliers.sum())


def optimize_pose(T_cw: np.ndarray, points_w: np.ndarray, uv: np.ndarray, u_right: np.ndarray,
                  inv_sigma2: np.ndarray, camera: Camera, rounds: int = ROUNDS,
                  iterations: int = ITERATIONS) -> PoseResult:
    """Refine ``T_cw`` against M map-point observations, classifying outliers (ORB-SLAM2 scheme).

    Four rounds of up to ten Gauss-Newton iterations (a round ends early once the step is negligible); after each
    round every observation (the excluded ones too) is re-tested against its chi-square threshold, and only the
    inliers enter the next round. The first two rounds use the Huber kernel, the last two plain least squares.

    Args:
        T_cw: (4, 4) initial world-to-camera pose.
        points_w: (M, 3) map points; uv: (M, 2) matched undistorted keypoints; u_right: (M,) right coordinates
            (NaN for keypoints without depth); inv_sigma2: (M,) information of each keypoint, or (M, 2, 2)
            information matrices of (u, v) for observations without depth.
    Returns:
        ``PoseResult``; with fewer than 3 observations the pose is returned unchanged and all are outliers.
    """
    m = len(points_w)
    inv_sigma2 = _information(inv_sigma2)
    T = np.asarray(T_cw, dtype=np.float64).copy()
    threshold = chi2_thresholds(u_right)
    if m < 3:
        return PoseResult(T, np.zeros(m, bool), np.full(m, np.inf))
    inliers = np.ones(m, bool)
    chi2 = np.full(m, np.inf)
    for round_ in range(rounds):
        use = np.flatnonzero(inliers)
        p_w, obs_uv, obs_ur, info, th = points_w[use], uv[use], u_right[use], inv_sigma2[use], threshold[use]
        for _ in range(iterations):
            points_c = p_w @ T[:3, :3].T + T[:3, 3]
            front = points_c[:, 2] > 1e-6
            if front.sum() < 3:
                break
            e, d_proj = project_residuals(points_c, obs_uv, obs_ur, camera)
            w = _scaled(info, front.astype(np.float64))
            if round_ < ROBUST_ROUNDS:
                w = _scaled(w, huber_weights(_chi2(e, w), th))
            J = pose_jacobian(points_c, d_proj)
            Jw = _weighted_jacobian(J, w)
            try:
                delta = np.linalg.solve(Jw.T @ J.reshape(-1, 6), Jw.T @ e.reshape(-1))
            except np.linalg.LinAlgError:
                break
            T = retract(T, delta)
            if np.dot(delta, delta) < CONVERGED:
                break
        points_c = points_w @ T[:3, :3].T + T[:3, 3]
        front = points_c[:, 2] > 1e-6
        chi2 = np.full(m, np.inf)
        e, _ = project_residuals(points_c[front], uv[front], u_right[front], camera, with_jacobian=False)
        chi2[front] = _chi2(e, inv_sigma2[front])
        inliers = chi2 <= threshold
    return PoseResult(orthonormalize(T), inliers, chi2)


def optimize_frame(frame: Frame, positions: np.ndarray, camera: Camera) -> int:
    """Optimise ``frame.T_cw`` against its map-point matches and drop the outlier matches.

    Args:
        positions: (n, 3) world positions of all map points, indexed by ``frame.point_ids``.
    Returns:
        the number of inlier matches kept.
    """
    idx = frame.matched()
    result = optimize_pose(frame.T_cw, positions[frame.point_ids[idx]], frame.keypoints_un[idx], frame.u_right[idx],
                           frame.inv_sigma2[idx], camera)
    frame.T_cw = result.T_cw
    frame.point_ids[idx[~result.inliers]] = -1
    return result.n_inliers


def pose_covariance(T_cw: np.ndarray, points_w: np.ndarray, uv: np.ndarray, u_right: np.ndarray,
                    inv_sigma2: np.ndarray, camera: Camera) -> np.ndarray:
    """(6, 6) covariance of the camera pose ``T_cw`` from n point observations, in ROS order: camera centre (x, y, z)
    in the world, then rotations about the world's fixed axes (metres, radians).

    Gauss-Newton's inverse information ``(J^T W J)^-1`` of the pose step at ``T_cw``, scaled by the reduced
    chi-square of the residuals (their weighted sum over the residual rows minus the 6 unknowns), then moved from
    the step ``(omega, v)`` of ``T_cw`` to the camera's pose in the world: ``dc = -R_wc v``, ``dtheta = -R_wc
    omega``. Where the observations cannot fix the pose (fewer than 3, or a singular system) the covariance is
    infinite on the diagonal.

    Args:
        T_cw: (4, 4) world-to-camera pose.
        points_w: (n, 3) world points; uv: (n, 2) their observed undistorted pixels; u_right: (n,) right
            coordinates (NaN for monocular observations); inv_sigma2: (n,) information of each observation, or (n, 2, 2)
            information matrices of (u, v) for observations without depth.
    """
    points_c = points_w @ T_cw[:3, :3].T + T_cw[:3, 3]
    e, d_proj = project_residuals(points_c, uv, u_right, camera)
    rows = np.where(np.isnan(u_right), 2, 3)
    info = _information(inv_sigma2)
    J = pose_jacobian(points_c, d_proj)
    dof = int(rows.sum()) - 6
    try:
        if len(points_w) < 3 or dof <= 0:
            raise np.linalg.LinAlgError
        step_cov = np.linalg.inv(_weighted_jacobian(J, info).T @ J.reshape(-1, 6)) * float(_chi2(e, info).sum() / dof)
    except np.linalg.LinAlgError:
        return np.diag(np.full(6, np.inf))
    R_wc = T_cw[:3, :3].T
    A = np.zeros((6, 6))
    A[:3, 3:] = -R_wc
    A[3:, :3] = -R_wc
    return A @ step_cov @ A.T


def frame_covariance(frame: Frame, positions: np.ndarray, camera: Camera) -> np.ndarray:
    """(6, 6) covariance of the camera pose of a tracked ``frame`` from its map-point matches (``pose_covariance``
    at ``frame.T_cw``), in ROS order: camera centre (x, y, z) in the world, then rotations about the world's fixed
    axes (metres, radians). Where the matches cannot fix the pose (fewer than 3, or a singular system) the
    covariance is infinite on the diagonal.

    Args:
        positions: (n, 3) world positions of all map points, indexed by ``frame.point_ids``.
    """
    idx = frame.matched()
    return pose_covariance(frame.T_cw, positions[frame.point_ids[idx]], frame.keypoints_un[idx], frame.u_right[idx],
                           frame.inv_sigma2[idx], camera)


@dataclass
class BundleProblem:
    """Observations of a windowed bundle adjustment.

    Attributes:
        T_cw: (K, 4, 4) keyframe poses; the first ``n_free`` are optimised, the others stay fixed.
        n_free: number of optimised poses.
        points: (P, 3) initial point positions (all optimised).
        kf_index: (M,) pose of each observation (index into ``T_cw``).
        point_index: (M,) point of each observation (index into ``points``).
        uv: (M, 2) observed undistorted pixels; u_right: (M,) right coordinates, NaN for none;
        inv_sigma2: (M,) information of each observation.
    """

    T_cw: np.ndarray
    n_free: int
    points: np.ndarray
    kf_index: np.ndarray
    point_index: np.ndarray
    uv: np.ndarray
    u_right: np.ndarray
    inv_sigma2: np.ndarray


def bundle_adjust(problem: BundleProblem, camera: Camera, iterations: int,
                  stop: Callable[[], bool] = lambda: False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Jointly refine the free poses and the points of ``problem`` (ORB-SLAM2 ``LocalBundleAdjustment`` scheme).

    Two stages of at most ``iterations`` solver iterations each: the first with Huber weights on each
    observation's chi-square (delta^2 5.991 or 7.815; iteratively reweighted, the weights fixed per stage), then the
    observations failing the chi-square test are dropped and the second stage runs without the robust kernel.
    Each stage is ``scipy.optimize.least_squares`` (trust-region reflective, LSMR on the sparse analytic Jacobian).
    Unknowns are a left step ``(omega, v)`` per free pose (``retract``) and each point's position; residuals are
    ``sqrt(weight) * (observed - projected)``. When ``stop()`` turns true the iterations end (ORB-SLAM2's aborted
    local bundle adjustment); the steps made are kept.

    Returns:
        (K, 4, 4) poses, (P, 3) points and (M,) bool inliers (chi-square test at 95 %, point in front).
    """
    p = problem
    m, n_free, n_points = len(p.kf_index), p.n_free, len(p.points)
    threshold = chi2_thresholds(p.u_right)
    free_obs = np.flatnonzero(p.kf_index < n_free)
    rows = np.arange(3 * m).reshape(m, 3)
    pose_rows = np.repeat(rows[free_obs], 6, axis=1).reshape(-1)
    pose_cols = (6 * p.kf_index[free_obs][:, None, None] + np.arange(6)).repeat(3, axis=1).reshape(-1)
    point_rows = np.repeat(rows, 3, axis=1).reshape(-1)
    point_cols = np.tile((6 * n_free + 3 * p.point_index[:, None] + np.arange(3)), (1, 3)).reshape(-1)
    indices = (np.r_[pose_rows, point_rows], np.r_[pose_cols, point_cols])

    def unpack(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        poses = p.T_cw.copy()
        poses[:n_free] = retract(p.T_cw[:n_free], x[:6 * n_free].reshape(n_free, 6))
        return poses, x[6 * n_free:].reshape(n_points, 3)

    def linearize(x: np.ndarray, with_jacobian: bool):
        poses, points = unpack(x)
        R, t = poses[p.kf_index, :3, :3], poses[p.kf_index, :3, 3]
        points_c = np.einsum('mij,mj->mi', R, points[p.point_index]) + t
        front = points_c[:, 2] > 1e-6
        points_c[~front, 2] = 1.0
        e, d_proj = project_residuals(points_c, p.uv, p.u_right, camera, with_jacobian)
        e[~front] = 0.0
        return e, d_proj, points_c, R, front

    def chi2_of(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        e, _, _, _, front = linearize(x, False)
        return p.inv_sigma2 * (e * e).sum(1), front

    def solve(x0: np.ndarray, weights: np.ndarray) -> np.ndarray:
        if stop():
            return x0
        sqrt_w = np.sqrt(weights)[:, None]

        def check(x: np.ndarray) -> None:
            if stop():
                raise StopIteration

        def fun(x: np.ndarray) -> np.ndarray:
            return (linearize(x, False)[0] * sqrt_w).reshape(-1)

        def jac(x: np.ndarray) -> csr_matrix:
            _, d_proj, points_c, R, front = linearize(x, True)
            d_proj = d_proj * (-sqrt_w * front[:, None])[:, :, None]
            pose_part = pose_jacobian(points_c[free_obs], d_proj[free_obs]).reshape(-1)
            point_part = (d_proj @ R).reshape(-1)
            return csr_matrix((np.r_[pose_part, point_part], indices), shape=(3 * m, 6 * n_free + 3 * n_points))

        return least_squares(fun, x0, jac=jac, method='trf', x_scale='jac', tr_solver='lsmr',
                             max_nfev=iterations, callback=check).x

    x = np.r_[np.zeros(6 * n_free), p.points.reshape(-1)]
    chi2, _ = chi2_of(x)
    x = solve(x, p.inv_sigma2 * huber_weights(chi2, threshold))
    chi2, front = chi2_of(x)
    inliers = front & (chi2 <= threshold)
    x = solve(x, p.inv_sigma2 * inliers)
    chi2, front = chi2_of(x)
    poses, points = unpack(x)
    for k in range(n_free):
        poses[k] = orthonormalize(poses[k])
    return poses, points, front & (chi2 <= threshold)
