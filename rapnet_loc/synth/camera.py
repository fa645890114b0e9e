"""Colour camera model of the synthetic sequences: the OpenLORIS D400 colour intrinsics at any image size.

Size rule: the native 848x480 image is scaled uniformly by ``s = max(W / 848, H / 480)`` (the smallest scale
at which it covers the requested size), then centre-cropped to ``W x H``. With pixel centres at integer
coordinates (ROS convention) this gives::

    fx' = s * fx            cx' = s * (cx + 0.5) - 0.5 - (s * 848 - W) / 2
    fy' = s * fy            cy' = s * (cy + 0.5) - 0.5 - (s * 480 - H) / 2

so 640x480 keeps the native focal length and crops 104 columns on each side, 424x240 halves everything, and
320x240 is the half-size image cropped to 320 columns. No image is resampled: the renderer uses these
intrinsics directly.
"""
from __future__ import annotations

import numpy as np

from rapnet_loc.errors import ConfigError
from rapnet_loc.io.calibration import Calibration
from rapnet_loc.io.types import CameraInfo

MAX_SIDE = 8192


def camera_for_size(width: int, height: int, native: CameraInfo | None = None) -> CameraInfo:
    """Colour ``CameraInfo`` (frame ``d400_color``, no distortion) of a ``width x height`` image.

    Args:
        width, height: requested image size in pixels (1 .. ``MAX_SIDE``).
        native: camera to derive from; the packaged OpenLORIS D400 colour camera when None.
    Raises:
        ConfigError: a size that is not a positive integer up to ``MAX_SIDE``.
    """
    for name, value in (('width', width), ('height', height)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 < value <= MAX_SIDE:
            raise ConfigError(f'image {name} must be an integer between 1 and {MAX_SIDE}, got {value!r}')
    native = native or Calibration.load().color
    scale = max(width / native.width, height / native.height)
    crop_x = (scale * native.width - width) / 2.0
    crop_y = (scale * native.height - height) / 2.0
    k = np.array([[scale * native.fx, 0.0, scale * (native.cx + 0.5) - 0.5 - crop_x],
                  [0.0, scale * native.fy, scale * (native.cy + 0.5) - 0.5 - crop_y],
                  [0.0, 0.0, 1.0]])
    return CameraInfo(width=int(width), height=int(height), K=k, D=np.zeros(5), distortion_model='plumb_bob',
                      frame_id='d400_color')

