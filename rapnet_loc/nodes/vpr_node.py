"""``vpr_node``: "where am I?" for each colour image, against a saved map, for the front end's pose-input contract.

Each image is relocalized as ``rapnet-loc localize --estimator map`` does (``rapnet_loc.slam.localizer``): the map's
place recognizer (``patchnetvlad``, ``netvlad``, ``bow`` ...; the one saved in the map) ranks its keyframes, local
features are matched with the candidates' map points, PnP-RANSAC and a pose optimisation check the pose. The node
holds no depth: the colour image alone is localized.

Topics: subscribes ``/d400/color/image_raw`` (sensor_msgs/Image, sensor-data QoS), ``/d400/color/camera_info``
(latched) and ``/tf_static`` (camera mount, unless ``camera_to_base`` is set); publishes ``/rapnet_loc/vpr_pose``
(geometry_msgs/PoseWithCovarianceStamped: the base in the map frame, only when the check passes; covariance from the
pose optimisation's residuals, in ROS order, rotated into the map frame) and ``/rapnet_loc/vpr_candidates``
(diagnostic_msgs/DiagnosticArray: the top-k keyframes' ids, names and scores, and whether a pose was found).
"""
from __future__ import annotations

import threading

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import PoseWithCovarianceStamped
from rclpy.parameter import Parameter
from sensor_msgs.msg import CameraInfo as CameraInfoMsg
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from rapnet_loc.errors import ConfigError, TopicError
from rapnet_loc.geometry import invert
from rapnet_loc.io.types import CameraInfo, RGBDFrame
from rapnet_loc.landmarks.base import PoseEstimate, Scene
from rapnet_loc.nodes import qos
from rapnet_loc.nodes.base import RapnetNode, Stamped, spin
from rapnet_loc.nodes.convert import camera_info, matrix_to_pose, rgb_image, stamp_ns
from rapnet_loc.nodes.feature_node import IMAGE_TOPIC
from rapnet_loc.nodes.frontend_node import CAMERA_INFO_TOPIC
from rapnet_loc.nodes.params import Param, value
from rapnet_loc.nodes.tf import StaticTransforms, camera_mount
from rapnet_loc.slam.localizer import MapLocalizer
from rapnet_loc.slam.map_io import MapFile, load_map

POSE_TOPIC = '/rapnet_loc/vpr_pose'
CANDIDATES_TOPIC = '/rapnet_loc/vpr_candidates'
DIAGNOSTIC_NAME = 'rapnet_loc: vpr'

PARAMETERS = (
    Param('map_file', '', 'map file whose keyframes and place recognizer localize the images (rapnet-loc '
                          'build-map or replay --map-out)', required=True),
    Param('top_k', 5, 'keyframes listed on /rapnet_loc/vpr_candidates', (1, 1000)),
    Param('queue_size', 2, 'images waiting for processing; in a burst the oldest are dropped (and logged)', (1, 1000)),
    Param('map_frame', 'map', 'frame of the published poses (REP 105)'),
    Param('base_frame', 'base_link', 'robot base frame; the camera frame itself when there is no base'),
    Param('camera_to_base', Parameter.Type.DOUBLE_ARRAY,
          'pose of the camera optical frame in base_frame, [x, y, z, qx, qy, qz, qw]; unset: from /tf_static'),
)


def base_pose(estimate: PoseEstimate, T_base_cam: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(4, 4) ``T_map_base`` and its (6, 6) ROS-order covariance of a camera pose estimated in the map's world
    frame, which is the camera at the map's first keyframe (``T_map_world = T_base_cam``). The covariance is
    rotated into the map frame; the lever arm from camera to base is not propagated."""
    T_map_base = T_base_cam @ estimate.T_wc @ invert(T_base_cam)
    R = np.kron(np.eye(2), T_base_cam[:3, :3])
    return T_map_base, R @ estimate.covariance @ R.T


class VprNode(RapnetNode):
    PARAMETERS = PARAMETERS

    def __init__(self, **kwargs):
        super().__init__('vpr_node', **kwargs)
        if not self.params['map_file']:
            raise ConfigError('vpr_node needs a map file: set the map_file parameter (a map from rapnet-loc '
                              'build-map or replay --map-out)')
        self.map_file: MapFile = load_map(self.params['map_file'])
        self.camera: CameraInfo | None = None
        self.localizer: MapLocalizer | None = None
        self.T_base_cam: np.ndarray | None = None
        self.lock = threading.Lock()
        self.static_tf = StaticTransforms(self)
        self.pose_pub = self.create_publisher(PoseWithCovarianceStamped, POSE_TOPIC, qos.RELIABLE)
        self.candidates_pub = self.create_publisher(DiagnosticArray, CANDIDATES_TOPIC, qos.RELIABLE)
        self.sub = self.create_subscription(Image, IMAGE_TOPIC, self.guarded(self.on_image), qos.SENSOR)
        self.info_sub = self.create_subscription(CameraInfoMsg, CAMERA_INFO_TOPIC, self.guarded(self.on_camera_info),
                                                 qos.LATCHED)
        self.get_logger().info(f'localizing {self.sub.topic_name} against {self.params["map_file"]} '
                               f'({len(self.map_file.map.keyframes)} keyframes, place recognizer '
                               f'{self.map_file.config.place_recognition})')

    def on_camera_info(self, msg: CameraInfoMsg) -> None:
        info = camera_info(msg, self.info_sub.topic_name)
        with self.lock:
            if self.camera is None or (info.width, info.height) != (self.camera.width, self.camera.height) or \
                    not np.array_equal(info.K, self.camera.K):
                self.camera, self.localizer = info, None

    def on_image(self, msg: Image) -> None:
        self.worker.put(Stamped(stamp_ns(msg.header.stamp), (msg,)))

    def process(self, item: Stamped) -> None:
        msg, = item.data
        with self.lock:
            if self.camera is None:
                self.reject('no_camera_info', f'image {item.stamp_ns} dropped: no camera info received yet on '
                                              f'{self.info_sub.topic_name}')
                return
            if self.localizer is None and not self._start(msg.header.stamp):
                return
            rgb = rgb_image(msg, self.sub.topic_name, self.camera)
            depth = np.zeros(rgb.shape[:2], np.float32)
            estimate = self.localizer.estimate(RGBDFrame(0, item.stamp_ns, rgb, depth, self.camera.frame_id))
            ranking = self.localizer.ranking(int(self.params['top_k']))
        header = Header(stamp=msg.header.stamp, frame_id=self.params['map_frame'])
        if estimate is not None:
            T_map_base, covariance = base_pose(estimate, self.T_base_cam)
            pose = PoseWithCovarianceStamped(header=header)
            pose.pose.pose = matrix_to_pose(T_map_base)
            pose.pose.covariance = [float(c) for c in covariance.reshape(-1)]
            self.pose_pub.publish(pose)
        self.candidates_pub.publish(self._candidates(header, ranking, estimate))

    def _start(self, stamp) -> bool:
        try:
            self.T_base_cam = camera_mount(self, value(self, 'camera_to_base'), self.params['base_frame'],
                                           self.camera.frame_id, self.static_tf, None, stamp)
        except TopicError as exc:
            self.reject('no_camera_mount', f'image dropped: the camera mount is unknown ({exc}); set '
                                           f'camera_to_base or publish /tf_static')
            return False
        self.localizer = MapLocalizer({}, Scene(self.camera, None, self.map_file, None))
        return True

    def _candidates(self, header: Header, ranking, estimate: PoseEstimate | None) -> DiagnosticArray:
        keyframes = self.localizer.system.map.keyframes
        values = [KeyValue(key='pose', value='found' if estimate is not None else 'none'),
                  KeyValue(key='inliers', value=str(estimate.inliers if estimate is not None else 0))]
        values += [KeyValue(key=f'keyframe {i}', value=f'{keyframes[i].frame.name if i in keyframes else ""} {s:.6g}')
                   for i, s in zip(ranking.ids.tolist(), ranking.scores)]
        status = DiagnosticStatus(level=DiagnosticStatus.OK if estimate is not None else DiagnosticStatus.WARN,
                                  name=DIAGNOSTIC_NAME, message='pose found' if estimate is not None else 'no pose',
                                  hardware_id=self.camera.frame_id, values=values)
        return DiagnosticArray(header=Header(stamp=header.stamp), status=[status])


def main(args: list[str] | None = None) -> None:
    spin(VprNode, args)
