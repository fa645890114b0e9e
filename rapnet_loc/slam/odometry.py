"""Motion priors of the tracker: where the camera is expected at a new frame's stamp.

Both give the camera's motion between two stamps as ``D = T_cw(to) @ T_wc(from)`` (4, 4), so that the predicted
pose is ``D @ T_cw(from)``:

- ``ConstantVelocity``: the motion between the last two tracked frames, as a rate per second, extrapolated over the
  new frame's stamp gap (ORB-SLAM2's motion model assumes one frame period instead). Gaps longer than
  ``max_gap_s`` and stamps going backwards make the rate unknown, and the prediction is then no motion.
- ``OdometryPrior``: the base's motion measured by wheel odometry between the two stamps, moved to the camera with
  the camera's mount on the base (``T_base_cam``).

Motions are extrapolated in the parametrisation of ``rapnet_loc.slam.optimizer.retract``: a rotation vector and a
translation, ``D = [exp(omega) | v]``, scaled together; for the motion of a fraction of a second this agrees with
the SE(3) exponential map to first order.
"""
from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from rapnet_loc.geometry import invert
from rapnet_loc.io.trajectory import interpolate_poses
from rapnet_loc.slam.optimizer import so3_exp

NS = 1e9


def motion_log(D: np.ndarray) -> np.ndarray:
    """(6,) ``(omega, v)`` of a (4, 4) motion ``[exp(omega) | v]``."""
    return np.r_[Rotation.from_matrix(D[:3, :3]).as_rotvec(), D[:3, 3]]


def motion_exp(xi: np.ndarray) -> np.ndarray:
    """(4, 4) motion ``[exp(omega) | v]`` of ``xi = (omega, v)`` (6,)."""
    D = np.eye(4)
    D[:3, :3] = so3_exp(xi[:3])
    D[:3, 3] = xi[3:]
    return D


class ConstantVelocity:
    """Constant-velocity motion model over stamps.

    Args:
        max_gap_s: longest stamp gap (seconds) over which the velocity is measured or extrapolated.
    Attributes:
        rate: (6,) ``(omega, v)`` per second of the last measured motion, or None when unknown.
    """

    def __init__(self, max_gap_s: float):
        self.max_gap_s = float(max_gap_s)
        self.rate: np.ndarray | None = None

    def _dt(self, from_ns: int, to_ns: int) -> float | None:
        """Seconds from ``from_ns`` to ``to_ns`` when in (0, ``max_gap_s``], else None."""
        dt = (to_ns - from_ns) / NS
        return dt if 0 < dt <= self.max_gap_s else None

    def update(self, T_cw_from: np.ndarray, from_ns: int, T_cw_to: np.ndarray, to_ns: int) -> None:
        """Measure the velocity from two consecutive tracked poses (4, 4); unknown after a long or negative gap."""
        dt = self._dt(from_ns, to_ns)
        self.rate = None if dt is None else motion_log(T_cw_to @ invert(T_cw_from)) / dt

    def reset(self) -> None:
        """Forget the velocity (after relocalization or a discontinuity)."""
        self.rate = None

    def predict(self, from_ns: int, to_ns: int) -> np.ndarray:
        """(4, 4) motion ``D`` from ``from_ns`` to ``to_ns``; the identity when the velocity or the gap is unusable."""
        dt = self._dt(from_ns, to_ns)
        if self.rate is None or dt is None:
            return np.eye(4)
        return motion_exp(self.rate * dt)


class OdometryPrior:
    """Camera motion from wheel odometry (e.g. a bag's ``/odom``).

    Args:
        stamps_ns: (N,) odometry stamps; poses: (N, 4, 4) ``T_odom_base``.
        T_base_cam: (4, 4) pose of the camera on the base (e.g. ``base_link`` -> ``d400_color`` from /tf_static).
        max_gap_s: odometry samples further apart than this are not interpolated between.
    """

    def __init__(self, stamps_ns: np.ndarray, poses: np.ndarray, T_base_cam: np.ndarray, max_gap_s: float = 0.5):
        self.stamps_ns = np.asarray(stamps_ns, dtype=np.int64)
        self.poses = np.asarray(poses, dtype=np.float64).reshape(-1, 4, 4)
        self.T_base_cam = np.asarray(T_base_cam, dtype=np.float64)
        self.max_gap_s = float(max_gap_s)

    def motion(self, from_ns: int, to_ns: int) -> np.ndarray | None:
        """(4, 4) camera motion ``D`` from ``from_ns`` to ``to_ns``, or None when odometry does not cover both."""
        traj = interpolate_poses(self.stamps_ns, self.poses, [from_ns, to_ns], self.max_gap_s)
        if len(traj) < 2:
            return None
        T_from, T_to = traj.matrices
        # T_cw(to) @ T_wc(from) = inv(T_odom_base(to) @ T_base_cam) @ T_odom_base(from) @ T_base_cam
        return invert(T_to @ self.T_base_cam) @ T_from @ self.T_base_cam

    def travelled(self, from_ns: int, to_ns: int) -> float | None:
        """Path length (metres) of the base from ``from_ns`` to ``to_ns`` (the odometry samples between them, ends
        interpolated), or None when odometry does not cover both."""
        inner = self.stamps_ns[(self.stamps_ns > from_ns) & (self.stamps_ns < to_ns)]
        traj = interpolate_poses(self.stamps_ns, self.poses, [from_ns, *inner.tolist(), to_ns], self.max_gap_s)
        if len(traj) < len(inner) + 2:
            return None
        return float(np.linalg.norm(np.diff(traj.matrices[:, :3, 3], axis=0), axis=1).sum())
