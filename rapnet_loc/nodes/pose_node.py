"""What ``vpr_node`` and ``landmark_node`` share: each colour image goes to a pose estimator
(``rapnet_loc.landmarks.base.PoseEstimator``), and the pose it finds is published as the robot base in the map frame
for the front end's pose-input contract, with a diagnostic message per image.

Topics: subscribes ``/d400/color/image_raw`` (sensor_msgs/Image, sensor-data QoS), ``/d400/color/camera_info``
(latched) and ``/tf_static`` (camera mount, unless ``camera_to_base`` is set); publishes the node's pose topic
(geometry_msgs/PoseWithCovarianceStamped, only when the estimator finds a pose; covariance in ROS order, rotated into
the map frame) and its diagnostic topic (diagnostic_msgs/DiagnosticArray). The estimator's world frame is the map's:
the camera at the map's first keyframe, ``T_map_world = T_base_cam``. The node holds no depth: the colour image alone
is localized.
"""
from __future__ import annotations

import threading
import time

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import PoseWithCovarianceStamped
from rclpy.parameter import Parameter
from sensor_msgs.msg import CameraInfo as CameraInfoMsg
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from rapnet_loc.errors import TopicError
from rapnet_loc.io.types import CameraInfo, RGBDFrame
from rapnet_loc.landmarks.base import PoseEstimate, PoseEstimator
from rapnet_loc.nodes import outputs, qos
from rapnet_loc.nodes.base import RapnetNode, Stamped
from rapnet_loc.nodes.convert import camera_info, matrix_to_pose, rgb_image, stamp_ns
from rapnet_loc.nodes.feature_node import IMAGE_TOPIC
from rapnet_loc.nodes.frontend_node import CAMERA_INFO_TOPIC
from rapnet_loc.nodes.params import Param, value
from rapnet_loc.nodes.tf import StaticTransforms, camera_mount

FRAME_PARAMS = (
    Param('queue_size', 2, 'images waiting for processing; in a burst the oldest are dropped (and logged)', (1, 1000)),
    Param('map_frame', 'map', 'frame of the published poses (REP 105)'),
    Param('base_frame', 'base_link', 'robot base frame; the camera frame itself when there is no base'),
    Param('camera_to_base', Parameter.Type.DOUBLE_ARRAY,
          'pose of the camera optical frame in base_frame, [x, y, z, qx, qy, qz, qw]; unset: from /tf_static'),
)


class PoseNode(RapnetNode):
    """Colour images in, poses of the base in the map frame out (see the module doc).

    Subclasses set ``POSE_TOPIC``, ``DIAGNOSTIC_TOPIC``, ``DIAGNOSTIC_NAME`` and implement ``make_estimator`` (called
    once the camera is known, again when it changes) and ``diagnostic_values``.
    """

    POSE_TOPIC = ''
    DIAGNOSTIC_TOPIC = ''
    DIAGNOSTIC_NAME = ''

    def __init__(self, name: str, **kwargs):
        super().__init__(name, **kwargs)
        self.camera: CameraInfo | None = None
        self.estimator: PoseEstimator | None = None
        self.T_base_cam: np.ndarray | None = None
        self.lock = threading.Lock()
        self.static_tf = StaticTransforms(self)
        self.pose_pub = self.create_publisher(PoseWithCovarianceStamped, self.POSE_TOPIC, qos.RELIABLE)
        self.diagnostic_pub = self.create_publisher(DiagnosticArray, self.DIAGNOSTIC_TOPIC, qos.RELIABLE)
        self.sub = self.create_subscription(Image, IMAGE_TOPIC, self.guarded(self.on_image), qos.SENSOR)
        self.info_sub = self.create_subscription(CameraInfoMsg, CAMERA_INFO_TOPIC, self.guarded(self.on_camera_info),
                                                 qos.LATCHED)

    def make_estimator(self, camera: CameraInfo) -> PoseEstimator:
        """The pose estimator for images of ``camera``."""
        raise NotImplementedError

    def diagnostic_values(self, estimate: PoseEstimate | None) -> list[KeyValue]:
        """What the diagnostic message of an image lists besides the pose, inliers and time."""
        raise NotImplementedError

    def on_camera_info(self, msg: CameraInfoMsg) -> None:
        info = camera_info(msg, self.info_sub.topic_name)
        with self.lock:
            if self.camera is None or (info.width, info.height) != (self.camera.width, self.camera.height) or \
                    not np.array_equal(info.K, self.camera.K):
                self.camera, self.estimator = info, None

    def on_image(self, msg: Image) -> None:
        self.worker.put(Stamped(stamp_ns(msg.header.stamp), (msg,)))

    def process(self, item: Stamped) -> None:
        msg, = item.data
        with self.lock:
            if self.camera is None:
                self.reject('no_camera_info', f'image {item.stamp_ns} dropped: no camera info received yet on '
                                              f'{self.info_sub.topic_name}')
                return
            if self.estimator is None and not self._start(msg.header.stamp):
                return
            start = time.perf_counter()
            rgb = rgb_image(msg, self.sub.topic_name, self.camera)
            depth = np.zeros(rgb.shape[:2], np.float32)
            estimate = self.estimator.estimate(RGBDFrame(0, item.stamp_ns, rgb, depth, self.camera.frame_id))
            ms = 1000.0 * (time.perf_counter() - start)
            values = self.diagnostic_values(estimate)
        header = Header(stamp=msg.header.stamp, frame_id=self.params['map_frame'])
        if estimate is not None:
            T_map_base, covariance = outputs.base_pose(estimate.T_wc, estimate.covariance, self.T_base_cam)
            pose = PoseWithCovarianceStamped(header=header)
            pose.pose.pose = matrix_to_pose(T_map_base)
            pose.pose.covariance = [float(c) for c in covariance.reshape(-1)]
            self.pose_pub.publish(pose)
        values = [KeyValue(key='pose', value='found' if estimate is not None else 'none'),
                  KeyValue(key='inliers', value=str(estimate.inliers if estimate is not None else 0)),
                  KeyValue(key='ms', value=f'{ms:.1f}'), *values]
        found = estimate is not None
        status = DiagnosticStatus(level=DiagnosticStatus.OK if found else DiagnosticStatus.WARN,
                                  name=self.DIAGNOSTIC_NAME, message='pose found' if found else 'no pose',
                                  hardware_id=self.camera.frame_id, values=values)
        self.diagnostic_pub.publish(DiagnosticArray(header=Header(stamp=header.stamp), status=[status]))

    def _start(self, stamp) -> bool:
        try:
            self.T_base_cam = camera_mount(self, value(self, 'camera_to_base'), self.params['base_frame'],
                                           self.camera.frame_id, self.static_tf, None, stamp)
        except TopicError as exc:
            self.reject('no_camera_mount', f'image dropped: the camera mount is unknown ({exc}); set '
                                           f'camera_to_base or publish /tf_static')
            return False
        self.estimator = self.make_estimator(self.camera)
        return True
