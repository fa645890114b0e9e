"""The OpenLORIS robots as the generator uses them: sensor mounts, footprint and noisy wheel odometry."""
from __future__ import annotations

from dataclasses import dataclass

from importlib import resources

import numpy as np
import yaml

from rapnet_loc.geometry import pose_matrix
from rapnet_loc.io.calibration import PACKAGED, Calibration
from rapnet_loc.synth.path import BaseTrajectory
from rapnet_loc.synth.world import yaw_matrix

# /odom rates of the OpenLORIS bags: 20 Hz, 40 Hz in market (recorded by the gaussian robot).
ODOM_RATE_HZ = {'tsinghua': 20.0, 'gaussian': 40.0}
BODY_RADIUS_M = 0.3
CAMERA_CLEARANCE_M = 0.15
WHEEL_BASE_M = 0.4
WHEEL_SCALE_STD = 0.004       # per-wheel radius error of one sequence (relative)
WHEEL_NOISE_STD = 0.01        # per-sample wheel speed noise (m/s)


@dataclass(frozen=True)
class Robot:
    """One robot: name, static sensor mounts and wheel odometry rate.

    Attributes:
        static: ``{(parent, child): (translation [x, y, z], rotation [x, y, z, w])}`` of base_link -> d400_color
            and base_link -> d400_depth, the numbers exactly as published in the OpenLORIS calibration.
    """

    name: str
    static: dict[tuple[str, str], tuple[list[float], list[float]]]
    odom_rate_hz: float

    def pose(self, parent: str, child: str) -> np.ndarray:
        """(4, 4) ``T_parent_child`` of a static mount."""
        return pose_matrix(*self.static[(parent, child)])

    @property
    def T_base_color(self) -> np.ndarray:
        return self.pose('base_link', 'd400_color')

    @property
    def clearance_m(self) -> float:
        """Distance that base_link keeps from obstacles: the body, and the camera keeps ``CAMERA_CLEARANCE_M``."""
        return max(BODY_RADIUS_M, float(np.hypot(*self.T_base_color[:2, 3])) + CAMERA_CLEARANCE_M)

    @classmethod
    def for_scene(cls, scene: str) -> Robot:
        """The robot that recorded OpenLORIS scene ``scene`` (CalibrationError for an unknown scene), with the
        D400 mounts of the packaged OpenLORIS calibration."""
        name = Calibration.load().robot(scene)
        entries = yaml.safe_load(resources.files('rapnet_loc.io').joinpath(PACKAGED).read_text())['robots'][name]
        static = {(e['parent'], e['child']): ([float(v) for v in e['translation']],
                                              [float(v) for v in e['rotation_xyzw']])
                  for e in entries if e['parent'] == 'base_link' and e['child'] in ('d400_color', 'd400_depth')}
        return cls(name, static, ODOM_RATE_HZ[name])


def wheel_odometry(trajectory: BaseTrajectory, t: np.ndarray,
                   rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Odometry integrated from noisy wheel speeds of a differential drive, starting at the identity.

    Each wheel has a radius error (``WHEEL_SCALE_STD``, fixed for the sequence) and white speed noise
    (``WHEEL_NOISE_STD``), so heading and position drift like real wheel odometry.

    Args:
        trajectory: true base motion.
        t: (K,) increasing sample times (seconds).
    Returns:
        (K, 4, 4) poses ``T_odom_base``, measured forward speeds (K,) and yaw rates (K,).
    """
    _, _, v, omega = trajectory.sample(t)
    scale = 1.0 + rng.normal(0.0, WHEEL_SCALE_STD, 2)
    left = (v - omega * WHEEL_BASE_M / 2) * scale[0] + rng.normal(0.0, WHEEL_NOISE_STD, len(t))
    right = (v + omega * WHEEL_BASE_M / 2) * scale[1] + rng.normal(0.0, WHEEL_NOISE_STD, len(t))
    v_m, omega_m = (left + right) / 2, (right - left) / WHEEL_BASE_M
    dt = np.diff(t, prepend=t[0])
    v_mid = np.concatenate([[0.0], (v_m[1:] + v_m[:-1]) / 2])
    omega_mid = np.concatenate([[0.0], (omega_m[1:] + omega_m[:-1]) / 2])
    yaw = np.cumsum(omega_mid * dt)
    heading = yaw - omega_mid * dt / 2
    x = np.cumsum(v_mid * dt * np.cos(heading))
    y = np.cumsum(v_mid * dt * np.sin(heading))
    poses = np.array([yaw_matrix(a, b, c) for a, b, c in zip(x, y, yaw)]).reshape(-1, 4, 4)
    return poses, v_m, omega_m
