"""ROS 1 bag output in the OpenLORIS layout (rosbags writer, ROS 1 Noetic message definitions).

Topics (all header stamps equal the bag receive times):

- ``/d400/color/image_raw``: sensor_msgs/Image ``rgb8``, frame ``d400_color``; ``header.seq`` is the frame index;
- ``/d400/aligned_depth_to_color/image_raw``: sensor_msgs/Image ``16UC1`` millimetres (0 = invalid), same frame
  and stamps as colour;
- ``/synth/labels``: sensor_msgs/Image ``mono8`` label map, same frame and stamps: object id = value & 0x7F
  (0 = nothing), bit 0x80 set on objects that move during the sequence (people); see ``rapnet_loc.synth.world``;
- ``/synth/label_table``: std_msgs/String, once at bag start: JSON list of ``{"id", "name", "dynamic",
  "movable"}`` (movable: furniture that may stand elsewhere in other sequences);
- ``/d400/color/camera_info`` and ``/d400/aligned_depth_to_color/camera_info``: sensor_msgs/CameraInfo, once at
  bag start;
- ``/tf_static``: tf2_msgs/TFMessage with the robot's base_link -> d400_color and base_link -> d400_depth, once at
  bag start;
- ``/gt``: tf2_msgs/TFMessage, ground truth ``gt_map`` -> ``base_link`` at every frame stamp;
- ``/odom``: nav_msgs/Odometry ``odom`` -> ``base_link`` from noisy wheel speeds (20 Hz, 40 Hz for gaussian).
"""
from __future__ import annotations

import json
import threading
from pathlib import Path
from queue import Queue

import numpy as np
from rosbags.rosbag1 import Writer

from rapnet_loc.errors import ConfigError
from rapnet_loc.geometry import pose_parts
from rapnet_loc.io.bag import ros1_typestore
from rapnet_loc.io.images import encode_image
from rapnet_loc.io.types import CameraInfo
from rapnet_loc.synth.world import LabelInfo

COMPRESSIONS = {'bz2': Writer.CompressionFormat.BZ2, 'lz4': Writer.CompressionFormat.LZ4, 'none': None}
CHUNK_BYTES = 16 << 20
QUEUE_FRAMES = 8
TOPICS = {
    'color': ('/d400/color/image_raw', 'sensor_msgs/msg/Image'),
    'depth': ('/d400/aligned_depth_to_color/image_raw', 'sensor_msgs/msg/Image'),
    'labels': ('/synth/labels', 'sensor_msgs/msg/Image'),
    'label_table': ('/synth/label_table', 'std_msgs/msg/String'),
    'color_info': ('/d400/color/camera_info', 'sensor_msgs/msg/CameraInfo'),
    'depth_info': ('/d400/aligned_depth_to_color/camera_info', 'sensor_msgs/msg/CameraInfo'),
    'tf_static': ('/tf_static', 'tf2_msgs/msg/TFMessage'),
    'gt': ('/gt', 'tf2_msgs/msg/TFMessage'),
    'odom': ('/odom', 'nav_msgs/msg/Odometry'),
}
_TS = ros1_typestore()
_T = _TS.types


def check_compression(compression: str) -> None:
    if compression not in COMPRESSIONS:
        raise ConfigError(f'unknown bag compression {compression!r}; choose one of: {", ".join(COMPRESSIONS)}')


def _header(stamp_ns: int, frame_id: str, seq: int = 0):
    stamp = _T['builtin_interfaces/msg/Time'](sec=int(stamp_ns // 10**9), nanosec=int(stamp_ns % 10**9))
    return _T['std_msgs/msg/Header'](seq=int(seq), stamp=stamp, frame_id=frame_id)


def _transform(stamp_ns: int, parent: str, child: str, t, q):
    """TransformStamped of translation ``t`` (3,) and quaternion ``q`` (4,) [x, y, z, w]."""
    return _T['geometry_msgs/msg/TransformStamped'](
        header=_header(stamp_ns, parent), child_frame_id=child,
        transform=_T['geometry_msgs/msg/Transform'](
            translation=_T['geometry_msgs/msg/Vector3'](x=t[0], y=t[1], z=t[2]),
            rotation=_T['geometry_msgs/msg/Quaternion'](x=q[0], y=q[1], z=q[2], w=q[3])))


def _camera_info(stamp_ns: int, camera: CameraInfo):
    k = np.asarray(camera.K, np.float64)
    p = np.zeros((3, 4))
    p[:, :3] = k
    return _T['sensor_msgs/msg/CameraInfo'](
        header=_header(stamp_ns, camera.frame_id), height=camera.height, width=camera.width,
        distortion_model=camera.distortion_model, D=np.asarray(camera.D, np.float64), K=k.ravel(),
        R=np.eye(3).ravel(), P=p.ravel(), binning_x=0, binning_y=0,
        roi=_T['sensor_msgs/msg/RegionOfInterest'](x_offset=0, y_offset=0, height=0, width=0, do_rectify=False))


def _image(stamp_ns: int, frame_id: str, seq: int, array: np.ndarray, encoding: str):
    f = encode_image(array, encoding)
    return _T['sensor_msgs/msg/Image'](header=_header(stamp_ns, frame_id, seq), height=f.height, width=f.width,
                                       encoding=f.encoding, is_bigendian=f.is_bigendian, step=f.step, data=f.data)


class SequenceBag:
    """Writes one sequence bag. Messages must come in time order; compression and file output run on a worker
    thread (bz2 and lz4 release the GIL), so rendering the next frame overlaps with writing this one.

    Args:
        path: new ``.bag`` file (must not exist).
        compression: ``bz2`` (as OpenLORIS), ``lz4`` or ``none``.
    """

    def __init__(self, path: str | Path, compression: str = 'bz2'):
        check_compression(compression)
        self.path = Path(path)
        self._writer = Writer(self.path)
        if COMPRESSIONS[compression] is not None:
            self._writer.set_compression(COMPRESSIONS[compression])
        self._writer.chunk_threshold = CHUNK_BYTES
        self._queue: Queue = Queue(maxsize=QUEUE_FRAMES * 3)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._drain, name=f'bag-writer {self.path.name}', daemon=True)
        self._writer.open()
        self._connections = {key: self._writer.add_connection(topic, msgtype, typestore=_TS)
                             for key, (topic, msgtype) in TOPICS.items()}
        self._thread.start()

    def __enter__(self) -> SequenceBag:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close()

    def _drain(self) -> None:
        while (item := self._queue.get()) is not None:
            if self._error is None:
                try:
                    self._writer.write(*item)
                except BaseException as err:   # re-raised in the caller's thread by close()/_put()
                    self._error = err

    def _put(self, key: str, stamp_ns: int, msg) -> None:
        if self._error is not None:
            raise self._error
        data = _TS.serialize_ros1(msg, TOPICS[key][1])
        self._queue.put((self._connections[key], int(stamp_ns), data))

    def close(self) -> None:
        """Flush, write the index and close; re-raises a failure of the worker thread."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()
            if self._error is None:
                self._writer.close()
        if self._error is not None:
            raise self._error

    def write_static(self, stamp_ns: int, camera: CameraInfo,
                     static: dict[tuple[str, str], tuple[list[float], list[float]]], labels: list[LabelInfo]) -> None:
        """Camera infos (colour and aligned depth share ``camera``), the static transforms
        ``{(parent, child): (translation, rotation_xyzw)}`` (written as given) and the label table, at bag start."""
        table = [{'id': info.id, 'name': info.name, 'dynamic': info.dynamic, 'movable': info.movable}
                 for info in labels]
        self._put('label_table', stamp_ns, _T['std_msgs/msg/String'](data=json.dumps(table)))
        self._put('color_info', stamp_ns, _camera_info(stamp_ns, camera))
        self._put('depth_info', stamp_ns, _camera_info(stamp_ns, camera))
        tfs = [_transform(stamp_ns, parent, child, t, q) for (parent, child), (t, q) in static.items()]
        self._put('tf_static', stamp_ns, _T['tf2_msgs/msg/TFMessage'](transforms=tfs))

    def write_frame(self, stamp_ns: int, index: int, frame_id: str, rgb: np.ndarray, depth_mm: np.ndarray,
                    labels: np.ndarray) -> None:
        """One frame: rgb (H, W, 3) uint8, depth_mm (H, W) uint16, labels (H, W) uint8."""
        self._put('color', stamp_ns, _image(stamp_ns, frame_id, index, rgb, 'rgb8'))
        self._put('depth', stamp_ns, _image(stamp_ns, frame_id, index, depth_mm, '16UC1'))
        self._put('labels', stamp_ns, _image(stamp_ns, frame_id, index, labels, 'mono8'))

    def write_gt(self, stamp_ns: int, seq: int, T_map_base: np.ndarray) -> None:
        tf = _transform(stamp_ns, 'gt_map', 'base_link', *pose_parts(T_map_base))
        tf.header.seq = seq
        self._put('gt', stamp_ns, _T['tf2_msgs/msg/TFMessage'](transforms=[tf]))

    def write_odom(self, stamp_ns: int, seq: int, T_odom_base: np.ndarray, v: float, omega: float) -> None:
        t, q = pose_parts(T_odom_base)
        pose_cov = np.diag([1e-3, 1e-3, 1e6, 1e6, 1e6, 1e-2]).ravel()
        twist_cov = np.diag([1e-4, 1e-4, 1e6, 1e6, 1e6, 1e-3]).ravel()
        vec = _T['geometry_msgs/msg/Vector3']
        msg = _T['nav_msgs/msg/Odometry'](
            header=_header(stamp_ns, 'odom', seq), child_frame_id='base_link',
            pose=_T['geometry_msgs/msg/PoseWithCovariance'](
                pose=_T['geometry_msgs/msg/Pose'](position=_T['geometry_msgs/msg/Point'](x=t[0], y=t[1], z=t[2]),
                                                  orientation=_T['geometry_msgs/msg/Quaternion'](
                                                      x=q[0], y=q[1], z=q[2], w=q[3])),
                covariance=pose_cov),
            twist=_T['geometry_msgs/msg/TwistWithCovariance'](
                twist=_T['geometry_msgs/msg/Twist'](linear=vec(x=float(v), y=0.0, z=0.0),
                                                    angular=vec(x=0.0, y=0.0, z=float(omega))),
                covariance=twist_cov))
        self._put('odom', stamp_ns, msg)
