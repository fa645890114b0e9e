"""Absolute pose estimation: where a single RGB-D frame was taken in a known scene. One interface, implementations
by name.

A ``PoseEstimator`` takes one frame and returns a ``PoseEstimate`` (camera pose, its covariance and the inliers
that support it) or None when it finds no pose it trusts. Estimators are built for a scene (``Scene``: the camera
and, for the ones that localize against it, a map file loaded by ``rapnet_loc.slam.map_io``). They are used by
``rapnet-loc localize --estimator NAME`` (each frame on its own), by the front end as a pose prior while it is
lost (``pose_estimator: {name, conf}`` in the configuration, ``replay --estimator NAME``, the ``pose_estimator``
parameter of ``frontend_node``) and by nodes that publish ``/rapnet_loc/landmark_pose``.

Adding one is one file ``rapnet_loc/landmarks/<name>.py`` with a subclass decorated ``@register('<name>')``.
``map`` (the map-based relocalization of ``rapnet_loc.slam.localizer``) lives with the front end it reuses and is
listed in ``ESTIMATORS.modules``.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from rapnet_loc.io.types import CameraInfo, RGBDFrame
from rapnet_loc.registry import Configurable, Registry


@dataclass
class PoseEstimate:
    """A camera pose found for one frame.

    Attributes:
        T_wc: (4, 4) camera-to-world pose in the scene's (map's) frame.
        covariance: (6, 6) covariance of the pose in ROS order (x, y, z, then rotations about the world's fixed
            x, y, z axes; metres and radians), as in ``geometry_msgs/PoseWithCovariance``.
        inliers: correspondences consistent with the pose.
    """

    T_wc: np.ndarray
    covariance: np.ndarray
    inliers: int


@dataclass
class Scene:
    """What an estimator is built for.

    Attributes:
        camera: the colour camera of the frames to localize.
        depth_camera: intrinsics of unregistered depth images, None when depth is aligned to colour.
        map_file: the map to localize against (``rapnet_loc.slam.map_io.MapFile``), None without one.
        config: the front end's settings (``rapnet_loc.slam.config.SlamConfig``) for estimators that track.
    """

    camera: CameraInfo
    depth_camera: CameraInfo | None = None
    map_file: Any = None
    config: Any = None


class PoseEstimator(Configurable, ABC):
    """A frame in, a pose out (see the module doc)."""

    kind: ClassVar[str] = 'pose estimator'

    def __init__(self, conf: dict | None, scene: Scene):
        super().__init__(conf)
        self.scene = scene

    @abstractmethod
    def estimate(self, rgbd: RGBDFrame) -> PoseEstimate | None:
        """The pose of ``rgbd`` (colour (H, W, 3) uint8 RGB, depth (H, W) float32 metres aligned to colour), or None
        when none is found."""


ESTIMATORS: Registry[PoseEstimator] = Registry(
    'pose estimator', __package__, modules={'map': 'rapnet_loc.slam.localizer'},
    helpers=frozenset({'base', 'network', 'surface', 'targets', 'train', 'voting'}))
register = ESTIMATORS.register


def create_estimator(name: str, conf: dict | None, scene: Scene) -> PoseEstimator:
    """The pose estimator registered as ``name`` with options ``conf``, built for ``scene``.

    Raises:
        ConfigError: unknown name (the message lists the registered ones) or option, or the estimator cannot work
            in ``scene`` (e.g. it needs a map and there is none).
    """
    return ESTIMATORS.create(name, conf, scene)
