"""Wheel odometry received live: the front end's motion prior (``--odom-prior`` of ``rapnet-loc replay``) and the
``odom -> base`` pose at an image stamp for the ``map -> odom`` transform."""
from __future__ import annotations

import threading

import numpy as np

from rapnet_loc.io.trajectory import interpolate_poses
from rapnet_loc.slam.odometry import OdometryPrior


class LiveOdometry(OdometryPrior):
    """``OdometryPrior`` over the ``T_odom_base`` poses received so far (the last ``window_s`` seconds of stamps).

    ``add`` runs on the executor thread and ``motion``/``at``/``wait_to_cover`` on the processing thread, hence the
    lock.
    """

    def __init__(self, T_base_cam: np.ndarray, window_s: float, max_gap_s: float = 0.5):
        super().__init__(np.zeros(0, np.int64), np.zeros((0, 4, 4)), T_base_cam, max_gap_s)
        self.window_ns = round(window_s * 1e9)
        self._lock = threading.Condition()

    def add(self, stamp_ns: int, T_odom_base: np.ndarray) -> None:
        with self._lock:
            keep = self.stamps_ns >= stamp_ns - self.window_ns
            self.stamps_ns = np.r_[self.stamps_ns[keep], np.int64(stamp_ns)]
            self.poses = np.concatenate([self.poses[keep], T_odom_base[None]])
            self._lock.notify_all()

    def wait_to_cover(self, stamp_ns: int, timeout_s: float) -> bool:
        """Wait at most ``timeout_s`` for a pose stamped at or after ``stamp_ns`` (an image usually arrives before
        the odometry that brackets it; tf2's message filter waits likewise), unless the odometry is not live: none
        received, or the newest more than ``max_gap_s`` before the stamp. Whether it covers the stamp now."""
        def settled() -> bool:
            if len(self.stamps_ns) == 0:
                return True
            newest = int(self.stamps_ns[-1])
            return newest >= stamp_ns or stamp_ns - newest > self.max_gap_s * 1e9

        with self._lock:
            self._lock.wait_for(settled, timeout_s)
            return len(self.stamps_ns) > 0 and int(self.stamps_ns[-1]) >= stamp_ns

    def motion(self, from_ns: int, to_ns: int) -> np.ndarray | None:
        with self._lock:
            return super().motion(from_ns, to_ns)

    def at(self, stamp_ns: int) -> np.ndarray | None:
        """(4, 4) ``T_odom_base`` interpolated at ``stamp_ns``, or None when the odometry does not cover it."""
        with self._lock:
            traj = interpolate_poses(self.stamps_ns, self.poses, [stamp_ns], self.max_gap_s)
        return traj.matrices[0] if len(traj) else None
