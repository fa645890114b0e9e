"""Pinhole model of the colour camera of an RGB-D sensor, with ORB-SLAM2's virtual stereo baseline ``bf``.

ORB-SLAM2 treats a keypoint with depth ``z`` as a stereo observation whose right-image coordinate is
``u_right = u - bf / z``; ``bf`` (baseline times fx, pixel-metres) sets how much the depth residual weighs.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from rapnet_loc.io.types import CameraInfo


@dataclass(frozen=True)
class Camera:
    """Intrinsics ``fx, fy, cx, cy`` (pixels), image ``width`` x ``height``, distortion ``D`` (plumb_bob) and
    ``bf`` (pixel-metres)."""

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int
    bf: float = 40.0
    D: np.ndarray = field(default_factory=lambda: np.zeros(5))

    @classmethod
    def from_info(cls, info: CameraInfo, bf: float = 40.0) -> Camera:
        return cls(info.fx, info.fy, info.cx, info.cy, int(info.width), int(info.height), float(bf),
                   np.asarray(info.D, dtype=np.float64).reshape(-1))

    @property
    def K(self) -> np.ndarray:
        """(3, 3) intrinsic matrix."""
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    def project(self, points_c: np.ndarray) -> np.ndarray:
        """(N, 2) pixels of (N, 3) points in the camera frame (z > 0 expected; undistorted pixels)."""
        z = points_c[:, 2]
        return np.stack([self.fx * points_c[:, 0] / z + self.cx, self.fy * points_c[:, 1] / z + self.cy], axis=1)

    def project_visible(self, points_c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pixels (N, 2) of camera-frame points (N, 3) and an (N,) mask of those in front and inside the image
        (pixels of the others are zero)."""
        visible = points_c[:, 2] > 0
        uv = np.zeros((len(points_c), 2))
        uv[visible] = self.project(points_c[visible])
        return uv, visible & self.in_image(uv)

    def backproject(self, uv: np.ndarray, z: np.ndarray) -> np.ndarray:
        """(N, 3) camera-frame points of (N, 2) undistorted pixels at depths (N,) metres."""
        return np.stack([(uv[:, 0] - self.cx) * z / self.fx, (uv[:, 1] - self.cy) * z / self.fy, z], axis=1)

    def undistort(self, uv: np.ndarray) -> np.ndarray:
        """(N, 2) float64 undistorted pixels of (N, 2) raw pixels (a copy when there is no distortion)."""
        uv = np.asarray(uv, dtype=np.float64).reshape(-1, 2)
        if len(uv) == 0 or not np.any(self.D):
            return uv.copy()
        out = cv2.undistortPoints(uv.reshape(-1, 1, 2), self.K, self.D, P=self.K)
        return out.reshape(-1, 2)

    def in_image(self, uv: np.ndarray) -> np.ndarray:
        """(N,) bool: pixels (N, 2) inside the image."""
        return (uv[:, 0] >= 0) & (uv[:, 0] < self.width) & (uv[:, 1] >= 0) & (uv[:, 1] < self.height)
