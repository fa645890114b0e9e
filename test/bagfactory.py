"""Small OpenLORIS-style ROS 1 bags for tests, written with ``rosbags`` (bz2 chunks, ROS 1 typestore).

Image content is a function of the frame number so that tests can tell which colour went with which depth:
colour frame ``i`` is filled with ``color_value(i)``, depth frame ``j`` with ``depth_mm(j)`` millimetres.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from rosbags.rosbag1 import Writer

from rapnet_loc.geometry import pose_parts
from rapnet_loc.io.bag import ros1_typestore
from rapnet_loc.io.images import ENCODINGS, encode_image
from rapnet_loc.io.openloris import OpenLORISTopics

TS = ros1_typestore()
T = TS.types
HEIGHT, WIDTH = 6, 8
K = np.array([[611.45, 0.0, 433.2], [0.0, 611.49, 249.47], [0.0, 0.0, 1.0]])
RECEIVE_LAG_NS = 3_000_000


def color_value(i: int) -> int:
    return (10 * i + 1) % 256


def depth_mm(j: int) -> int:
    return 1000 + 10 * j


def filled(encoding: str, value: int) -> np.ndarray:
    """(HEIGHT, WIDTH[, C]) array of ``value`` (wrapped to the dtype) in the layout of ``encoding``."""
    enc = ENCODINGS[encoding]
    shape = (HEIGHT, WIDTH, enc.channels) if enc.channels else (HEIGHT, WIDTH)
    return np.full(shape, value).astype(enc.dtype)


def header(stamp: int, frame_id: str):
    return T['std_msgs/msg/Header'](seq=0, stamp=T['builtin_interfaces/msg/Time'](sec=stamp // 10**9,
                                    nanosec=stamp % 10**9), frame_id=frame_id)


def image_msg(stamp: int, frame_id: str, array: np.ndarray, encoding: str):
    f = encode_image(array, encoding)
    return T['sensor_msgs/msg/Image'](header=header(stamp, frame_id), height=f.height, width=f.width,
                                      encoding=f.encoding, is_bigendian=f.is_bigendian, step=f.step, data=f.data)


def transform_stamped(stamp: int, parent: str, child: str, pose: np.ndarray):
    t, q = pose_parts(pose)
    return T['geometry_msgs/msg/TransformStamped'](
        header=header(stamp, parent), child_frame_id=child,
        transform=T['geometry_msgs/msg/Transform'](translation=T['geometry_msgs/msg/Vector3'](*t),
                                                   rotation=T['geometry_msgs/msg/Quaternion'](*q)))


def odometry_msg(stamp: int, pose: np.ndarray):
    t, q = pose_parts(pose)
    pose_msg = T['geometry_msgs/msg/Pose'](position=T['geometry_msgs/msg/Point'](*t),
                                           orientation=T['geometry_msgs/msg/Quaternion'](*q))
    twist = T['geometry_msgs/msg/Twist'](linear=T['geometry_msgs/msg/Vector3'](0.0, 0.0, 0.0),
                                         angular=T['geometry_msgs/msg/Vector3'](0.0, 0.0, 0.0))
    return T['nav_msgs/msg/Odometry'](
        header=header(stamp, 'odom'), child_frame_id='base_link',
        pose=T['geometry_msgs/msg/PoseWithCovariance'](pose=pose_msg, covariance=np.zeros(36)),
        twist=T['geometry_msgs/msg/TwistWithCovariance'](twist=twist, covariance=np.zeros(36)))


def camera_info_msg(stamp: int):
    return T['sensor_msgs/msg/CameraInfo'](
        header=header(stamp, 'd400_color'), height=HEIGHT, width=WIDTH, distortion_model='plumb_bob',
        D=np.zeros(5), K=K.reshape(-1), R=np.eye(3).reshape(-1), P=np.zeros(12), binning_x=0, binning_y=0,
        roi=T['sensor_msgs/msg/RegionOfInterest'](x_offset=0, y_offset=0, height=0, width=0, do_rectify=False))


def write_openloris_bag(path: Path, color_ns, depth_ns, *, gt=(), odom=(), static=None,
                        color_encoding: str = 'rgb8', depth_encoding: str = '16UC1', omit=()) -> Path:
    """Write a bz2-compressed ROS 1 bag with the default ``OpenLORISTopics``.

    Args:
        color_ns, depth_ns: header stamps (ns) of the colour and depth frames; received ``RECEIVE_LAG_NS`` later.
        gt, odom: ``(stamp_ns, (4, 4) pose)`` items for ``/gt`` (gt_map -> base_link) and ``/odom``.
        static: ``{(parent, child): (4, 4)}`` written as one ``/tf_static`` message.
        color_encoding, depth_encoding: encodings of the image topics (arrays are built to match).
        omit: topic names to leave out of the bag.
    """
    topics = OpenLORISTopics()
    start = min([*color_ns, *depth_ns])
    records = [(topics.camera_info, start, 'sensor_msgs/msg/CameraInfo', camera_info_msg(start))]
    for i, stamp in enumerate(color_ns):
        records.append((topics.color, stamp, 'sensor_msgs/msg/Image',
                        image_msg(stamp, 'd400_color', filled(color_encoding, color_value(i)), color_encoding)))
    for j, stamp in enumerate(depth_ns):
        records.append((topics.depth, stamp, 'sensor_msgs/msg/Image',
                        image_msg(stamp, 'd400_color', filled(depth_encoding, depth_mm(j)), depth_encoding)))
    if static:
        tfs = [transform_stamped(start, p, c, m) for (p, c), m in static.items()]
        records.append((topics.tf_static, start, 'tf2_msgs/msg/TFMessage', T['tf2_msgs/msg/TFMessage'](tfs)))
    for stamp, pose in gt:
        msg = T['tf2_msgs/msg/TFMessage']([transform_stamped(stamp, 'gt_map', 'base_link', pose)])
        records.append((topics.ground_truth, stamp, 'tf2_msgs/msg/TFMessage', msg))
    for stamp, pose in odom:
        records.append((topics.odometry, stamp, 'nav_msgs/msg/Odometry', odometry_msg(stamp, pose)))

    writer = Writer(path)
    writer.set_compression(Writer.CompressionFormat.BZ2)
    with writer:
        connections = {}
        for topic, stamp, msgtype, msg in sorted(records, key=lambda r: r[1]):
            if topic in omit:
                continue
            if topic not in connections:
                connections[topic] = writer.add_connection(topic, msgtype, typestore=TS)
            writer.write(connections[topic], stamp + RECEIVE_LAG_NS, TS.serialize_ros1(msg, msgtype))
    return path
