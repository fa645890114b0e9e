"""Plain data types that the readers produce and every core module consumes."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class CameraInfo:
    """Pinhole camera model of one image stream.

    Attributes:
        width, height: image size in pixels.
        K: (3, 3) intrinsic matrix.
        D: (n,) distortion coefficients (``plumb_bob``: k1 k2 p1 p2 k3).
        distortion_model: ROS distortion model name.
        frame_id: optical frame of the images.
    """

    width: int
    height: int
    K: np.ndarray
    D: np.ndarray = field(default_factory=lambda: np.zeros(5))
    distortion_model: str = 'plumb_bob'
    frame_id: str = ''

    @property
    def fx(self) -> float:
        return float(self.K[0, 0])

    @property
    def fy(self) -> float:
        return float(self.K[1, 1])

    @property
    def cx(self) -> float:
        return float(self.K[0, 2])

    @property
    def cy(self) -> float:
        return float(self.K[1, 2])


@dataclass
class RGBDFrame:
    """One colour image with its aligned depth.

    Attributes:
        index: position of the frame in its source (0-based, after pairing).
        stamp_ns: capture time in integer nanoseconds (the colour image's header stamp).
        color: (H, W, 3) uint8 RGB.
        depth: (H, W) float32 metres aligned to ``color``; 0 marks invalid pixels.
        frame_id: optical frame of the colour camera.
        name: the frame's name in its source where it has one (7-Scenes: the file stem ``frame-000123``), else
            empty (bags: frames are known by their stamps).
    """

    index: int
    stamp_ns: int
    color: np.ndarray
    depth: np.ndarray
    frame_id: str = ''
    name: str = ''
