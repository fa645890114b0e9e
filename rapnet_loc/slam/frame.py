"""``Frame``: one RGB-D image as the tracker sees it (ORB-SLAM2 ``Frame``).

Pose convention (as ORB-SLAM2's ``mTcw``): ``T_cw`` (4, 4) maps world points into the camera frame,
``p_c = T_cw @ p_w``; ``T_wc`` is its inverse, the pose of the camera in the world, which is what the tracker outputs.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rapnet_loc.features.base import Features
from rapnet_loc.geometry import invert
from rapnet_loc.io.trajectory import format_stamp
from rapnet_loc.slam.camera import Camera


@dataclass
class Frame:
    """Keypoints of one image with depth and their map associations.

    Attributes:
        id: frame number (0-based, in processing order).
        stamp_ns: capture time of the image.
        features: the extractor's output, N keypoints.
        keypoints_un: (N, 2) float64 undistorted keypoint pixels.
        depth: (N,) float64 depth in metres at each keypoint, 0 where invalid.
        points_c: (N, 3) float64 keypoints back-projected into the camera frame, NaN rows where depth is invalid.
        u_right: (N,) float64 virtual right-image coordinate ``u - bf / depth``, NaN where depth is invalid.
        inv_sigma2: (N,) float64 information of a keypoint's pixel error, ``1 / scale(level)**2``.
        point_ids: (N,) int64 id of the map point matched to each keypoint, -1 for none.
        T_cw: (4, 4) world-to-camera pose, None until tracked.
        name: the source frame's name (7-Scenes file stem, or the stamp in seconds); names keyframes in map files
            and retrieval pairs.
        image: (H, W, 3) uint8 RGB colour image, kept only until a place recognizer that needs it has described
            the frame (None otherwise).
        place_descriptor: the place recognizer's descriptor of the frame, once computed (relocalization).
    """

    id: int
    stamp_ns: int
    features: Features
    keypoints_un: np.ndarray
    depth: np.ndarray
    points_c: np.ndarray
    u_right: np.ndarray
    inv_sigma2: np.ndarray
    point_ids: np.ndarray
    T_cw: np.ndarray | None = None
    name: str = ''
    image: np.ndarray | None = None
    place_descriptor: np.ndarray | None = None

    @classmethod
    def create(cls, frame_id: int, stamp_ns: int, features: Features, depth_image: np.ndarray, camera: Camera,
               depth_range: tuple[float, float], depth_camera: Camera | None = None, name: str = '',
               image: np.ndarray | None = None) -> Frame:
        """A frame from features and an (H, W) float32 depth image in metres, named ``name`` (default: the stamp
        in seconds), with its colour ``image`` when a place recognizer may need it.

        Depth is read at the keypoint's pixel when the depth image is registered to the colour image
        (``depth_camera`` None). Otherwise ``depth_camera`` holds the depth image's own intrinsics and the depth
        is read where the keypoint's viewing ray meets the depth image, assuming both cameras share their optical
        centre (registration without baseline: a zoom and shift, as for 7-Scenes' unregistered Kinect images).
        Values outside ``depth_range`` (min exclusive, max inclusive) count as invalid.
        """
        n = len(features)
        kp_un = camera.undistort(features.keypoints)
        depth = np.zeros(n)
        if n and depth_image.size:
            if depth_camera is None:
                pix = features.keypoints.astype(np.float64)
            else:
                pix = depth_camera.project(camera.backproject(kp_un, np.ones(n)))
            h, w = depth_image.shape[:2]
            col, row = np.rint(pix[:, 0]).astype(np.int64), np.rint(pix[:, 1]).astype(np.int64)
            inside = (col >= 0) & (col < w) & (row >= 0) & (row < h)
            depth[inside] = depth_image[row[inside], col[inside]]
            depth[~((depth > depth_range[0]) & (depth <= depth_range[1]))] = 0.0
        valid = depth > 0
        points_c = np.full((n, 3), np.nan)
        points_c[valid] = camera.backproject(kp_un[valid], depth[valid])
        u_right = np.full(n, np.nan)
        u_right[valid] = kp_un[valid, 0] - camera.bf / depth[valid]
        return cls(frame_id, int(stamp_ns), features, kp_un, depth, points_c, u_right,
                   features.level_scales ** -2, np.full(n, -1, np.int64), name=name or format_stamp(stamp_ns),
                   image=image)

    def __len__(self) -> int:
        return len(self.features)

    @property
    def T_wc(self) -> np.ndarray:
        """(4, 4) camera-to-world pose (the camera's pose in the world)."""
        return invert(self.T_cw)

    @property
    def has_depth(self) -> np.ndarray:
        """(N,) bool, keypoints with valid depth."""
        return self.depth > 0

    def points_w(self, index: np.ndarray) -> np.ndarray:
        """(K, 3) world positions of the back-projected keypoints ``index`` (needs ``T_cw``)."""
        T_wc = self.T_wc
        return self.points_c[index] @ T_wc[:3, :3].T + T_wc[:3, 3]

    def matched(self) -> np.ndarray:
        """(K,) indices of the keypoints matched to a map point."""
        return np.flatnonzero(self.point_ids >= 0)
