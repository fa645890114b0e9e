"""ROS 2 message <-> numpy conversions of the nodes (no cv_bridge: images go through ``rapnet_loc.io.images``).

Poses are (4, 4) float64 matrices ``T_a_b`` (pose of ``b`` in ``a``); quaternions ``[x, y, z, w]``; stamps integer
nanoseconds.
"""
from __future__ import annotations

import numpy as np
from builtin_interfaces.msg import Time
from geometry_msgs.msg import Point, Pose, Quaternion, Transform, TransformStamped, Vector3
from sensor_msgs.msg import CameraInfo as CameraInfoMsg

from rapnet_loc.errors import ImageFormatError, TopicError
from rapnet_loc.geometry import pose_matrix, pose_parts
from rapnet_loc.io.bag import stamp_ns
from rapnet_loc.io.images import to_depth_m, to_rgb
from rapnet_loc.io.types import CameraInfo

__all__ = ['stamp_ns', 'to_stamp', 'pose_to_matrix', 'matrix_to_pose', 'matrix_to_transform', 'transform_to_matrix',
           'transform_stamped', 'camera_info', 'rgb_image', 'depth_image']


def to_stamp(ns: int) -> Time:
    """``builtin_interfaces/Time`` of integer nanoseconds."""
    return Time(sec=int(ns // 1_000_000_000), nanosec=int(ns % 1_000_000_000))


def pose_to_matrix(pose: Pose) -> np.ndarray:
    """(4, 4) matrix of a ``geometry_msgs/Pose``; TopicError when it is not finite or the quaternion is zero."""
    p, q = pose.position, pose.orientation
    t, quat = np.array([p.x, p.y, p.z]), np.array([q.x, q.y, q.z, q.w])
    if not (np.isfinite(t).all() and np.isfinite(quat).all()) or np.linalg.norm(quat) < 1e-9:
        raise TopicError(f'pose is not finite or has a zero quaternion: position {t}, orientation {quat}')
    return pose_matrix(t, quat)


def transform_to_matrix(tf: Transform) -> np.ndarray:
    """(4, 4) matrix of a ``geometry_msgs/Transform``."""
    t, q = tf.translation, tf.rotation
    return pose_matrix([t.x, t.y, t.z], [q.x, q.y, q.z, q.w])


def _parts(T: np.ndarray) -> tuple[list[float], list[float]]:
    t, q = pose_parts(T)
    return [float(v) for v in t], [float(v) for v in q]


def matrix_to_pose(T: np.ndarray) -> Pose:
    """``geometry_msgs/Pose`` of a (4, 4) matrix."""
    t, q = _parts(T)
    return Pose(position=Point(x=t[0], y=t[1], z=t[2]), orientation=Quaternion(x=q[0], y=q[1], z=q[2], w=q[3]))


def matrix_to_transform(T: np.ndarray) -> Transform:
    """``geometry_msgs/Transform`` of a (4, 4) matrix."""
    t, q = _parts(T)
    return Transform(translation=Vector3(x=t[0], y=t[1], z=t[2]), rotation=Quaternion(x=q[0], y=q[1], z=q[2], w=q[3]))


def transform_stamped(stamp: Time, parent: str, child: str, T_parent_child: np.ndarray) -> TransformStamped:
    """``TransformStamped`` of the pose of ``child`` in ``parent`` at ``stamp``."""
    msg = TransformStamped(child_frame_id=child, transform=matrix_to_transform(T_parent_child))
    msg.header.stamp, msg.header.frame_id = stamp, parent
    return msg


def camera_info(msg: CameraInfoMsg, topic: str) -> CameraInfo:
    """``CameraInfo`` of a ``sensor_msgs/CameraInfo``; TopicError when its size, K or D is unusable."""
    K, D = np.asarray(msg.k, np.float64).reshape(3, 3), np.asarray(msg.d, np.float64)
    if msg.width <= 0 or msg.height <= 0 or not np.isfinite(K).all() or K[0, 0] <= 0 or K[1, 1] <= 0 \
            or not np.isfinite(D).all():
        raise TopicError(f"camera info on '{topic}' is unusable: {msg.width}x{msg.height}, K = {K.ravel().tolist()}, "
                         f"D = {D.tolist()}")
    return CameraInfo(int(msg.width), int(msg.height), K, D, str(msg.distortion_model), str(msg.header.frame_id))


def rgb_image(msg, topic: str, camera: CameraInfo | None = None) -> np.ndarray:
    """(H, W, 3) uint8 RGB of a colour ``sensor_msgs/Image``; ImageFormatError for another encoding or a size
    other than ``camera``'s."""
    rgb = to_rgb(msg, topic)
    _check_size(rgb.shape, topic, camera)
    return rgb


def depth_image(msg, topic: str, camera: CameraInfo | None = None, depth_scale: float = 0.001) -> np.ndarray:
    """(H, W) float32 depth in metres (0 invalid) of a depth ``sensor_msgs/Image`` (16UC1/mono16 in
    ``depth_scale`` metres, or 32FC1 metres); ImageFormatError for another encoding or a size other than
    ``camera``'s."""
    depth = to_depth_m(msg, topic, depth_scale)
    _check_size(depth.shape, topic, camera)
    return depth


def _check_size(shape: tuple[int, ...], topic: str, camera: CameraInfo | None) -> None:
    if camera is not None and tuple(shape[:2]) != (camera.height, camera.width):
        raise ImageFormatError(f"image on '{topic}' is {shape[1]}x{shape[0]}, but the camera info says "
                               f"{camera.width}x{camera.height}")

