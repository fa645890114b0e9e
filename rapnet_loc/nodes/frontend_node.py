"""``frontend_node``: the RGB-D front end (``rapnet_loc.slam.system.System``, as ``rapnet-loc replay`` runs it) on
live topics.

Inputs (default names, remappable): features ``/rapnet_loc/features`` (PointCloud2, ``feature_cloud`` layout) or,
with ``extract_in_process``, colour images ``/d400/color/image_raw``; aligned depth
``/d400/aligned_depth_to_color/image_raw``; ``/d400/color/camera_info`` (transient local); ``/odom``
(nav_msgs/Odometry, optional); ``/tf_static`` (camera mount, unless ``camera_to_base`` is set); pose priors
(geometry_msgs/PoseWithCovarianceStamped in the map frame) on ``/initialpose`` (Nav2), ``/rapnet_loc/vpr_pose`` and
``/rapnet_loc/landmark_pose``.

Outputs, stamped with the image stamp: ``/rapnet_loc/pose`` (PoseStamped of the camera in the map frame),
``/rapnet_loc/odometry`` (Odometry of the base in the map frame), ``/rapnet_loc/path`` (Path of the camera poses),
``/rapnet_loc/map_points`` (MarkerArray, transient local, after each keyframe), ``/diagnostics`` (state, counts,
timing of every frame) and TF (REP 105): ``map -> odom`` (``T_map_base * inv(T_odom_base)`` at the image stamp) once
odometry arrives, else ``map -> base_link``. Services ``~/save_map`` and ``~/load_map`` (std_srvs/Trigger) write the
map to the ``map_out`` parameter's file and localize against the ``map_in`` parameter's file. SIGINT or SIGTERM
(``ros2 launch`` sends them on Ctrl-C) ends the node cleanly: the frame at hand is finished and published, local
mapping integrates its queue and, with ``save_map_on_exit``, the map is saved to ``map_out``
(``rapnet_loc.nodes.base.spin``).

Place recognition (relocalization candidates, saved with the map) and an in-process pose estimator consulted while
lost are chosen by name, as ``replay --place-recognition/--estimator`` choose them: parameters
``place_recognition`` and ``pose_estimator`` (empty: the configuration file's). A pose estimator and a recognizer
that needs the colour image work with ``extract_in_process`` only.

Frames: the SLAM world is the first camera pose (or a loaded map's world); the map frame is the base frame at that
pose, ``T_map_world = T_base_cam``, so that the map frame is level when the base is.

Output policy with several maps (``rapnet_loc.slam.tracking``):
- Poses are published in the first map's frame only. While the front end tracks in a map it started when lost,
  they are published if that map is anchored (started at the wheel odometry's predicted pose: ``odom_prior``) or
  merged into the first map; frames of an unanchored map get none until it merges (the OpenLORIS benchmark scores
  poses in the first map's frame). With ``odom_prior``, a lost frame up to ``odom_bridge_s`` (configuration file,
  2 s) after the last tracked one gets the pose the odometry predicts from it (state ``bridged``).
- Odometry at a frame's stamp is interpolated between the poses that bracket it; an image usually arrives before the
  odometry after it, so a frame waits for that up to ``odom_wait`` seconds while ``/odom`` is live (as tf2's message
  filter waits for a transform). Without it, the prior and ``map -> odom`` would be missing for the frames between
  two odometry messages (2 of 3 frames of a 30 Hz camera with 20 Hz wheel odometry).
- Covariance (``/rapnet_loc/odometry``, ROS order, rotated into the map frame): that of the final pose optimisation
  (``rapnet_loc.slam.optimizer.frame_covariance``). For a bridged pose, and in a map anchored by odometry and not
  merged yet, the odometry's uncertainty is added on the diagonal: ``bridged_std_m`` squared on x, y, z and
  ``bridged_std_deg`` (in radians) squared on the rotations.
- ``map -> odom`` is published on every frame once a pose and odometry exist: while no pose is published (lost, or
  in an unanchored map) the last one is held, so that the robot's pose in the map follows its odometry. When it
  moves by more than 2 cm or 1 degree from one frame to the next (a relocalization, a merge that corrects an
  odometry anchor), an info line says by how much and why.
- ``/diagnostics`` values: ``state`` (``new_map`` on the frame that starts one, ``bridged``), ``map`` (the map id
  the frame was tracked in) and ``anchor`` (``first map``; ``odometry``: bridged, or in a map anchored by odometry;
  ``none``: an unanchored map, not published; ``lost``; ``System.anchor``).
"""
from __future__ import annotations

import threading

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseStamped, PoseWithCovarianceStamped
from nav_msgs.msg import Odometry, Path
from rclpy.parameter import Parameter
from sensor_msgs.msg import CameraInfo as CameraInfoMsg
from sensor_msgs.msg import Image, PointCloud2
from std_srvs.srv import Trigger
from visualization_msgs.msg import MarkerArray

from rapnet_loc.errors import ConfigError, RapnetLocError, TopicError
from rapnet_loc.geometry import invert
from rapnet_loc.io.types import CameraInfo, RGBDFrame
from rapnet_loc.nodes import outputs, qos
from rapnet_loc.nodes.base import FEATURE_PARAMS, RapnetNode, Stamped, slam_config, spin
from rapnet_loc.nodes.convert import (camera_info, depth_image, pose_to_matrix, rgb_image, stamp_ns,
                                      transform_stamped)
from rapnet_loc.nodes.feature_cloud import decode_features
from rapnet_loc.nodes.feature_node import FEATURES_TOPIC, IMAGE_TOPIC
from rapnet_loc.nodes.odometry import LiveOdometry
from rapnet_loc.nodes.params import Param, value
from rapnet_loc.nodes.sync import ApproxSync
from rapnet_loc.nodes.tf import StaticTransforms, TfPublisher, camera_mount
from rapnet_loc.slam.map_io import MapFile, load_map
from rapnet_loc.slam.run import make_estimator
from rapnet_loc.slam.system import System, TrackResult
from rapnet_loc.vpr.base import RECOGNIZERS

DEPTH_TOPIC = '/d400/aligned_depth_to_color/image_raw'
CAMERA_INFO_TOPIC = '/d400/color/camera_info'
ODOM_TOPIC = '/odom'
POSE_PRIOR_TOPICS = ('/initialpose', '/rapnet_loc/vpr_pose', '/rapnet_loc/landmark_pose')
UNPAIRED_LOG_S = 5.0  # shortest time between two warnings about unpaired images (a stopped topic would flood the log)
JUMP_M, JUMP_DEG = 0.02, 1.0        # map -> odom changes above these from one frame to the next are logged

PARAMETERS = FEATURE_PARAMS + (
    Param('extract_in_process', False, 'subscribe to colour images and extract features in this node instead of '
                                       'subscribing to a feature node'),
    Param('place_recognition', '', 'place recognizer of relocalization (registry name: bow, ...); empty: the '
                                   'configuration file\'s'),
    Param('pose_estimator', '', 'pose estimator consulted while lost (registry name); empty: the configuration '
                                'file\'s, none by default'),
    Param('feature_scale_factor', 1.2, 'pyramid scale factor of the received features (ORB: 1.2, RaP-Net: 1.0)',
          (1.0, 4.0)),
    Param('feature_levels', 8, 'pyramid levels of the received features (ORB: 8, RaP-Net: 1)', (1, 32)),
    Param('map_frame', 'map', 'frame of the published poses (REP 105)'),
    Param('odom_frame', 'odom', 'frame of the wheel odometry; map -> odom is published when /odom arrives'),
    Param('base_frame', 'base_link', 'robot base frame; the camera frame itself when there is no base'),
    Param('camera_to_base', Parameter.Type.DOUBLE_ARRAY,
          'pose of the camera optical frame in base_frame, [x, y, z, qx, qy, qz, qw]; unset: from /tf_static'),
    Param('odom_prior', False, 'predict each frame from /odom instead of the constant-velocity model (replay '
                               '--odom-prior)'),
    Param('publish_tf', True, 'publish map -> odom (or map -> base_frame)'),
    Param('bridged_std_m', 0.1, 'position standard deviation (m) added to bridged poses and poses in a map '
                                'anchored by odometry', (0.0, 100.0)),
    Param('bridged_std_deg', 2.0, 'rotation standard deviation (deg) added to bridged poses and poses in a map '
                                  'anchored by odometry', (0.0, 180.0)),
    Param('max_sync_dt', 0.02, 'largest stamp difference (s) of paired features/colour and depth', (0.0, 1.0)),
    Param('depth_scale', 0.001, 'metres per unit of 16-bit depth images', (1e-6, 1.0)),
    Param('odom_window', 10.0, 'seconds of odometry kept', (0.1, 3600.0)),
    Param('odom_wait', 0.1, 'seconds a frame waits at most for the odometry that brackets its stamp (only while '
                            '/odom is live)', (0.0, 10.0)),
    Param('path_length', 100000, 'poses kept in the published path', (1, 10000000)),
    Param('map_in', '', 'map file to localize against (at start-up, and on ~/load_map)', read_only=False),
    Param('map_out', '', 'file that ~/save_map writes', read_only=False),
    Param('save_map_on_exit', False, 'save the map to map_out when the node ends (SIGINT, SIGTERM)'),
    Param('sequential', False, 'run local mapping on each keyframe before the next frame (one thread, reproducible); '
                               'default: in a thread of its own, as ORB-SLAM2 does'),
)


class FrontendNode(RapnetNode):
    PARAMETERS = PARAMETERS

    def __init__(self, **kwargs):
        super().__init__('frontend_node', **kwargs)
        p = self.params
        self.config = slam_config(p)
        if not p['extract_in_process'] and (self.config.pose_estimator or
                                            RECOGNIZERS.get(self.config.place_recognition).needs_image):
            raise ConfigError('a pose estimator, or a place recognizer that needs colour images '
                              f'({self.config.place_recognition!r}), needs extract_in_process: true')
        self.map_file: MapFile | None = load_map(p['map_in'], self.config.features) if p['map_in'] else None
        self.camera: CameraInfo | None = None
        self.system: System | None = None
        self.T_base_cam: np.ndarray | None = None
        self.odometry = LiveOdometry(np.eye(4), p['odom_window'])   # camera mount set when known
        self.pending_prior: np.ndarray | None = None
        self.last_stamp: int | None = None
        self.map_odom: np.ndarray | None = None     # last map -> odom published, (4, 4)
        self.merges = 0                            # merges seen so far (Map.merged)
        self.lock = threading.Lock()      # the System, between the worker and the service/pose callbacks
        self.sync = ApproxSync(round(p['max_sync_dt'] * 1e9), max(4, int(p['queue_size']) * 4))
        self.static_tf = StaticTransforms(self)
        self.tf = TfPublisher(self) if p['publish_tf'] else None
        self.path = Path()
        self.pubs = {
            'pose': self.create_publisher(PoseStamped, '/rapnet_loc/pose', qos.RELIABLE),
            'odometry': self.create_publisher(Odometry, '/rapnet_loc/odometry', qos.RELIABLE),
            'path': self.create_publisher(Path, '/rapnet_loc/path', qos.RELIABLE),
            'map_points': self.create_publisher(MarkerArray, '/rapnet_loc/map_points', qos.LATCHED),
            'diagnostics': self.create_publisher(DiagnosticArray, '/diagnostics', qos.RELIABLE)}
        if p['extract_in_process']:
            self.main_sub = self.create_subscription(Image, IMAGE_TOPIC, self.guarded(self.on_main), qos.SENSOR)
        else:
            self.main_sub = self.create_subscription(PointCloud2, FEATURES_TOPIC, self.guarded(self.on_main),
                                                     qos.SENSOR)
        self.depth_sub = self.create_subscription(Image, DEPTH_TOPIC, self.guarded(self.on_depth), qos.SENSOR)
        self.info_sub = self.create_subscription(CameraInfoMsg, CAMERA_INFO_TOPIC, self.guarded(self.on_camera_info),
                                                 qos.LATCHED)
        self.odom_sub = self.create_subscription(Odometry, ODOM_TOPIC, self.guarded(self.on_odometry), qos.ODOMETRY)
        self.prior_subs = [self.create_subscription(PoseWithCovarianceStamped, topic, self.guarded(self.on_pose_prior),
                                                    qos.RELIABLE) for topic in POSE_PRIOR_TOPICS]
        self.map_services = [self.create_service(Trigger, '~/save_map', self.on_save_map),
                         self.create_service(Trigger, '~/load_map', self.on_load_map)]

    # --- callbacks of the executor thread: convert cheaply, queue the work -----------------------------------------

    def on_main(self, msg) -> None:
        self._offer(0, msg)

    def on_depth(self, msg: Image) -> None:
        self._offer(1, msg)

    def _offer(self, stream: int, msg) -> None:
        before = sum(self.sync.unmatched)
        pair = self.sync.add(stream, stamp_ns(msg.header.stamp), msg)
        if sum(self.sync.unmatched) > before:
            self.reject('unpaired', f'dropped images without a partner within max_sync_dt '
                                    f'({self.params["max_sync_dt"]} s; unpaired so far: {self.main_sub.topic_name} '
                                    f'{self.sync.unmatched[0]}, {self.depth_sub.topic_name} {self.sync.unmatched[1]}): '
                                    f'a topic stopped, or their stamps are further apart',
                        sum(self.sync.unmatched) - before, throttle_s=UNPAIRED_LOG_S)
        if pair is not None:
            self.worker.put(Stamped(pair[0], pair[1:]))

    def on_camera_info(self, msg: CameraInfoMsg) -> None:
        camera = camera_info(msg, self.info_sub.topic_name)
        with self.lock:
            if self.camera is not None and self.system is not None and camera != self.camera:
                self.get_logger().warning(f'camera info on {self.info_sub.topic_name} changed; keeping the first '
                                          f'({self.camera.width}x{self.camera.height})')
                return
            self.camera = camera

    def on_odometry(self, msg: Odometry) -> None:
        self.odometry.add(stamp_ns(msg.header.stamp), pose_to_matrix(msg.pose.pose))

    def on_pose_prior(self, msg: PoseWithCovarianceStamped) -> None:
        frame = msg.header.frame_id
        if frame and frame != self.params['map_frame']:
            raise TopicError(f"pose prior in frame '{frame}' ignored: it must be in the map frame "
                             f"'{self.params['map_frame']}'")
        T_map_base = pose_to_matrix(msg.pose.pose)
        with self.lock:
            if self.system is None:
                self.pending_prior = T_map_base
            else:
                self.system.set_pose_prior(self._world_from_map(T_map_base))
        self.get_logger().info(f'pose prior received: base at {np.round(T_map_base[:3, 3], 3).tolist()} in '
                               f'{self.params["map_frame"]}')

    def on_save_map(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        response.success, response.message = self.save_map()
        return response

    def save_map(self) -> tuple[bool, str]:
        """Write the map to ``map_out`` (atomically: a failure leaves the file there intact); whether it was
        written and what happened, also logged."""
        path = value(self, 'map_out')
        try:
            if not path:
                raise RapnetLocError('set the parameter map_out to the file to write')
            with self.lock:
                if self.system is None:
                    raise RapnetLocError('no map yet: no frame has been tracked')
                self.system.save_map(path)
            done = True, f'map saved to {path}'
        except (RapnetLocError, OSError) as exc:
            done = False, f'cannot save the map: {exc}'
        if done[0]:
            self.get_logger().info(done[1])
        else:       # rclpy wants one severity per logging call site
            self.get_logger().error(done[1])
        return done

    def on_load_map(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        path = value(self, 'map_in')
        try:
            if not path:
                raise RapnetLocError('set the parameter map_in to the map file to localize against')
            map_file = load_map(path, self.config.features)
            with self.lock:
                if self.system is not None:
                    self.system.shutdown()
                self.map_file, self.system = map_file, None    # a new System on the next frame
            response.success, response.message = True, f'localizing against {path}'
        except RapnetLocError as exc:
            response.success, response.message = False, f'cannot load the map: {exc}'
        self.get_logger().info(response.message)
        return response

    # --- the worker thread ---------------------------------------------------------------------------------------

    def process(self, item: Stamped) -> None:
        self.odometry.wait_to_cover(item.stamp_ns, self.params['odom_wait'])
        with self.lock:
            result = self._track(item)
            if result is not None:
                self._publish(item, result)

    def _track(self, item: Stamped) -> TrackResult | None:
        main_msg, depth_msg = item.data
        if self.camera is None:
            self.reject('no_camera_info', f'frame {item.stamp_ns} dropped: no camera info received yet on '
                                          f'{self.info_sub.topic_name}')
            return None
        if self.last_stamp is not None and item.stamp_ns <= self.last_stamp:
            self.reject('out_of_order', f'frame {item.stamp_ns} dropped: not after the last processed frame '
                                        f'{self.last_stamp}')
            return None
        if self.system is None and not self._start(main_msg.header.stamp):
            return None
        depth = depth_image(depth_msg, self.depth_sub.topic_name, self.camera, self.params['depth_scale'])
        if self.params['extract_in_process']:
            rgb = rgb_image(main_msg, self.main_sub.topic_name, self.camera)
            result = self.system.process(RGBDFrame(0, item.stamp_ns, rgb, depth, self.camera.frame_id))
        else:
            features = decode_features(main_msg, self.main_sub.topic_name, self.params['feature_scale_factor'],
                                       self.params['feature_levels'])
            result = self.system.process_features(item.stamp_ns, features, depth)
        self.last_stamp = item.stamp_ns
        return result

    def _start(self, stamp) -> bool:
        """Create the System once the camera mount is known; False (frame dropped) while it is not."""
        p = self.params
        try:
            self.T_base_cam = self._camera_mount(stamp)
        except TopicError as exc:
            self.reject('no_camera_mount', f'frame dropped: the camera mount is unknown ({exc}); set '
                                           f'camera_to_base or publish /tf_static')
            return False
        self.odometry.T_base_cam = self.T_base_cam
        map_file = self.map_file
        config = self.config if map_file is None else map_file.settings(self.config)
        self.system = System(self.camera, config, slam_map=None if map_file is None else map_file.map,
                             odometry=self.odometry if p['odom_prior'] else None,
                             recognizer=None if map_file is None else map_file.recognizer_for(config),
                             estimator=make_estimator(config, self.camera, None, map_file),
                             threaded=not p['sequential'])
        self.path.poses = []
        if self.pending_prior is not None:
            self.system.set_pose_prior(self._world_from_map(self.pending_prior))
            self.pending_prior = None
        estimator = f', pose estimator {config.pose_estimator}' if config.pose_estimator else ''
        self.get_logger().info(f'front end started: {config.features} features, {config.place_recognition} place '
                               f'recognition{estimator}, camera {self.camera.width}x{self.camera.height}, '
                               + ('localizing' if map_file else 'mapping'))
        return True

    def destroy_node(self) -> None:
        """Stop taking frames (the one at hand is finished and published), let local mapping finish its queue (the
        map ``~/save_map`` would write) and, with ``save_map_on_exit``, save the map; then destroy the node."""
        self.worker.stop()
        if getattr(self, 'system', None) is not None:       # None too when the parameters were refused
            self.system.shutdown()
            if self.params['save_map_on_exit']:
                self.save_map()
        super().destroy_node()

    def _camera_mount(self, stamp) -> np.ndarray:
        """(4, 4) ``T_base_cam`` from the ``camera_to_base`` parameter (then also published on ``/tf_static``,
        stamped ``stamp``) or from ``/tf_static``."""
        return camera_mount(self, value(self, 'camera_to_base'), self.params['base_frame'], self.camera.frame_id,
                            self.static_tf, self.tf, stamp)

    def _world_from_map(self, T_map_base: np.ndarray) -> np.ndarray:
        """Camera-to-world pose (4, 4) of a base pose in the map frame (``T_map_world = T_base_cam``)."""
        return invert(self.T_base_cam) @ T_map_base @ self.T_base_cam

    def _publish(self, item: Stamped, result: TrackResult) -> None:
        p = self.params
        stamp = item.data[0].header.stamp
        anchor = self.system.anchor(result)
        counters = {'anchor': anchor, 'keyframes': len(self.system.map.keyframes) if self.system.map else 0,
                    **self.rejected}
        self.pubs['diagnostics'].publish(outputs.diagnostics(stamp, self.camera.frame_id, result, counters))
        T_wc = self.system.pose_in_first_map(result)
        if T_wc is None:
            if self.tf is not None and self.map_odom is not None:
                self.tf.send([transform_stamped(stamp, p['map_frame'], p['odom_frame'], self.map_odom)])
            return
        T_map_base, covariance = outputs.base_pose(T_wc, self.system.covariance_in_first_map(result),
                                                   self.T_base_cam)
        if anchor == 'odometry':
            std = [p['bridged_std_m']] * 3 + [np.radians(p['bridged_std_deg'])] * 3
            covariance = covariance + np.diag(np.square(std))
        T_map_cam = T_map_base @ self.T_base_cam
        pose = outputs.pose_stamped(stamp, p['map_frame'], T_map_cam)
        self.pubs['pose'].publish(pose)
        self.pubs['odometry'].publish(outputs.odometry(stamp, p['map_frame'], p['base_frame'], T_map_base,
                                                       covariance))
        self.path.header = pose.header
        self.path.poses = (self.path.poses + [pose])[-p['path_length']:]
        self.pubs['path'].publish(self.path)
        if self.tf is not None:
            self._publish_tf(stamp, item.stamp_ns, T_map_base, result)
        if result.keyframe:
            world = self.system.map_points()
            self.pubs['map_points'].publish(outputs.map_points(
                stamp, p['map_frame'], world @ self.T_base_cam[:3, :3].T + self.T_base_cam[:3, 3]))

    def _publish_tf(self, stamp, ns: int, T_map_base: np.ndarray, result: TrackResult) -> None:
        p = self.params
        if len(self.odometry.stamps_ns) == 0:
            self.tf.send([transform_stamped(stamp, p['map_frame'], p['base_frame'], T_map_base)])
            return
        T_odom_base = self.odometry.at(ns)
        if T_odom_base is None:
            self.get_logger().warning(f'no map -> odom at {ns}: /odom does not cover the image stamp',
                                      throttle_duration_sec=5.0)
            return
        map_odom = T_map_base @ invert(T_odom_base)
        merges = len(self.system.map.merged)
        moved = outputs.jump(self.map_odom, map_odom, JUMP_M, JUMP_DEG)
        if moved is not None:
            why = 'maps merged' if merges != self.merges else result.state
            self.get_logger().info(f'map -> odom moved by {moved[0]:.3f} m and {moved[1]:.1f} deg at {ns} ({why}, '
                                   f'map {result.map_id})')
        self.map_odom, self.merges = map_odom, merges
        self.tf.send([transform_stamped(stamp, p['map_frame'], p['odom_frame'], map_odom)])


def main(args: list[str] | None = None) -> None:
    spin(FrontendNode, args)


if __name__ == '__main__':
    main()
