"""Challenge switches and the image-level effects they drive: illumination changes and motion blur.

Scene-level challenges (repetitive textures, featureless walls) are applied by ``rapnet_loc.synth.scenes``,
moved furniture by ``rapnet_loc.synth.layout`` and people by ``rapnet_loc.synth.people``.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from functools import lru_cache

import cv2
import numpy as np

from rapnet_loc.errors import ConfigError
from rapnet_loc.geometry import invert
from rapnet_loc.io.types import CameraInfo

EXPOSURE_S = 0.02          # colour exposure time that motion blur integrates over
MIN_BLUR_PX = 0.5
MAX_BLUR_TAPS = 8
BLUR_TAP_PX = 2.0
FAR_M = 10.0
MAX_PEOPLE = 20             # keeps every label id within the 7 bits of the label maps


@dataclass(frozen=True)
class Challenges:
    """Which OpenLORIS-style difficulties a synthetic sequence contains.

    Attributes:
        people: number of people walking through the scene in each sequence (dynamic objects; 0 = none).
        repetitive: tiled floor, patterned carpet, identical pillars and doors.
        featureless: some walls painted one flat colour, without posters.
        illumination: global gain/gamma drift, a different brightness per sequence, and one light switched off
            for part of each sequence.
        moved_furniture: movable furniture stands elsewhere in sequences 2, 3, ...
        motion_blur: colour images blurred along the image-plane motion during the exposure.
    """

    people: int = 3
    repetitive: bool = True
    featureless: bool = True
    illumination: bool = True
    moved_furniture: bool = True
    motion_blur: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.people, bool) or not isinstance(self.people, (int, np.integer)) \
                or not 0 <= self.people <= MAX_PEOPLE:
            raise ConfigError(f'number of people must be an integer from 0 to {MAX_PEOPLE}, got {self.people!r}')
        for f in fields(self)[1:]:
            if not isinstance(getattr(self, f.name), bool):
                raise ConfigError(f'challenge switch {f.name} must be True or False, got {getattr(self, f.name)!r}')

    @classmethod
    def none(cls) -> Challenges:
        """A static, evenly lit, well-textured scene: every challenge off."""
        return cls(people=0, repetitive=False, featureless=False, illumination=False, moved_furniture=False,
                   motion_blur=False)


class Illumination:
    """Lighting of one sequence as a function of time ``t`` (seconds from its first frame).

    With ``enabled``: the sequence has its own base brightness (different time of day), gain and gamma drift
    smoothly (sums of slow sinusoids), and one light is off during one interval. Otherwise everything is constant.

    Args:
        n_lights: number of point lights of the scene.
        enabled: the ``illumination`` challenge switch.
        rng: generator drawing this sequence's parameters.
        duration_s: length of the sequence.
    """

    def __init__(self, n_lights: int, enabled: bool, rng: np.random.Generator, duration_s: float):
        self.n_lights = n_lights
        self.enabled = enabled
        self.base_gain = float(rng.uniform(0.75, 1.2)) if enabled else 1.0
        self._gain_waves = self._waves(rng, 0.12) if enabled else np.zeros((0, 3))
        self._gamma_waves = self._waves(rng, 0.1) if enabled else np.zeros((0, 3))
        self.switched = int(rng.integers(n_lights)) if enabled and n_lights else -1
        t_off = float(rng.uniform(0.15, 0.45)) * duration_s
        self.off_interval = (t_off, t_off + float(rng.uniform(0.25, 0.4)) * duration_s)

    @staticmethod
    def _waves(rng: np.random.Generator, amplitude: float) -> np.ndarray:
        """(3, 3) rows of (amplitude, angular frequency rad/s, phase)."""
        periods = rng.uniform(4.0, 20.0, 3)
        return np.column_stack([amplitude * rng.uniform(0.3, 1.0, 3) / 1.6, 2 * np.pi / periods,
                                rng.uniform(0, 2 * np.pi, 3)])

    @staticmethod
    def _sum(waves: np.ndarray, t: float) -> float:
        return float(np.sum(waves[:, 0] * np.sin(waves[:, 1] * t + waves[:, 2])))

    def light_levels(self, t: float) -> np.ndarray:
        """(L,) intensity factors of the scene's lights at ``t`` (1 = on, 0 = off)."""
        levels = np.ones(self.n_lights)
        if self.switched >= 0 and self.off_interval[0] <= t < self.off_interval[1]:
            levels[self.switched] = 0.0
        return levels

    def gain(self, t: float) -> float:
        """Global brightness factor at ``t``."""
        return self.base_gain * (1.0 + self._sum(self._gain_waves, t))

    def gamma(self, t: float) -> float:
        """Exponent applied to normalised intensities at ``t`` (1 = linear)."""
        return 1.0 + self._sum(self._gamma_waves, t)


def expose(albedo: np.ndarray, irradiance: np.ndarray, gain: float, gamma: float) -> np.ndarray:
    """(H, W, 3) uint8 image ``255 * (albedo * irradiance * gain / 255) ** gamma``, saturating at 255.

    Args:
        albedo: (H, W, 3) uint8; irradiance: (H, W) float32.
    """
    shading = cv2.cvtColor(irradiance * np.float32(gain), cv2.COLOR_GRAY2RGB)
    linear = cv2.multiply(albedo, shading, dtype=cv2.CV_8U)
    if gamma == 1.0:
        return linear
    lut = np.clip(np.round(255.0 * (np.arange(256) / 255.0) ** gamma), 0, 255).astype(np.uint8)
    return cv2.LUT(linear, lut)


def exposure_flow(camera: CameraInfo, depth: np.ndarray, T_world_cam_open: np.ndarray,
                  T_world_cam_close: np.ndarray, T_world_cam: np.ndarray, step: int = 8) -> np.ndarray:
    """(H, W, 2) float32 image-plane displacement (pixels) of the static scene while the shutter is open.

    The points seen every ``step`` pixels (depth (H, W) metres from the camera ``T_world_cam``; invalid depth
    counts as ``FAR_M``) are projected into the camera at shutter opening and closing; the displacement field
    is interpolated in between.
    """
    h, w = depth.shape
    vs, us = np.mgrid[0:h:step, 0:w:step]
    z = depth[vs, us].astype(np.float64)
    z[z <= 0] = FAR_M
    k = np.asarray(camera.K, np.float64)
    pix = np.stack([us.ravel(), vs.ravel(), np.ones(us.size)])
    world = T_world_cam[:3, :3] @ (np.linalg.inv(k) @ pix * z.ravel()) + T_world_cam[:3, 3:4]

    def project(T_world_c: np.ndarray) -> np.ndarray:
        T = invert(T_world_c)
        cam = T[:3, :3] @ world + T[:3, 3:4]
        return (k @ cam)[:2] / np.maximum(cam[2], 1e-3)

    flow = (project(T_world_cam_close) - project(T_world_cam_open)).T.reshape(vs.shape + (2,)).astype(np.float32)
    return cv2.resize(flow, (w, h), interpolation=cv2.INTER_LINEAR)


def motion_blur(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """``image`` (H, W, 3) uint8 averaged along each pixel's motion ``flow`` (H, W, 2) during the exposure.

    Each output pixel is the mean of bilinear samples along ``p + s * flow(p)``, ``s`` in [-1/2, 1/2] (one
    sample per ``BLUR_TAP_PX`` pixels of motion, at most ``MAX_BLUR_TAPS``); motions under ``MIN_BLUR_PX`` leave
    the image unchanged.
    """
    fx, fy = cv2.split(flow)
    longest = float(cv2.magnitude(fx, fy).max())
    if longest < MIN_BLUR_PX:
        return image
    taps = int(np.clip(np.ceil(longest / BLUR_TAP_PX) + 1, 2, MAX_BLUR_TAPS))
    xs, ys = _pixel_grid(*image.shape[:2])
    total = np.zeros(image.shape, np.float32)
    for s in np.linspace(-0.5, 0.5, taps):
        sample = cv2.remap(image, cv2.scaleAdd(fx, float(s), xs), cv2.scaleAdd(fy, float(s), ys), cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_REFLECT)
        cv2.accumulate(sample, total)
    return cv2.convertScaleAbs(total, alpha=1.0 / taps)


@lru_cache(maxsize=4)
def _pixel_grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """(H, W) float32 x and y coordinates of every pixel."""
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    return xs, ys
