"""TF output and static-transform input of the nodes.

``TfPublisher`` sends transforms with tf2_ros's broadcasters when tf2_ros imports (a ROS 2 install), and otherwise
publishes ``tf2_msgs/TFMessage`` on ``/tf`` and ``/tf_static`` itself with the QoS that tf2 uses. ``StaticTransforms``
collects ``/tf_static`` (every publisher's latched message) and composes chains of them.
"""
from __future__ import annotations

import numpy as np
from geometry_msgs.msg import TransformStamped
from rclpy.node import Node
from tf2_msgs.msg import TFMessage

from rapnet_loc.errors import TopicError
from rapnet_loc.geometry import find_chain, pose_matrix
from rapnet_loc.nodes import qos
from rapnet_loc.nodes.convert import transform_stamped, transform_to_matrix

try:
    from tf2_ros import StaticTransformBroadcaster, TransformBroadcaster
except ImportError:
    TransformBroadcaster = StaticTransformBroadcaster = None


class _TopicBroadcaster:
    """tf2_ros's broadcaster interface over a plain TFMessage publisher."""

    def __init__(self, node: Node, topic: str, profile):
        self._pub = node.create_publisher(TFMessage, topic, profile)

    def sendTransform(self, transforms: list[TransformStamped]) -> None:  # noqa: N802 (tf2_ros's name)
        self._pub.publish(TFMessage(transforms=list(transforms)))


class TfPublisher:
    """Dynamic and static transforms of a node."""

    def __init__(self, node: Node):
        if TransformBroadcaster is not None:
            self._dynamic, self._static = TransformBroadcaster(node), StaticTransformBroadcaster(node)
        else:
            self._dynamic = _TopicBroadcaster(node, '/tf', qos.TF)
            self._static = _TopicBroadcaster(node, '/tf_static', qos.TF_STATIC)

    def send(self, transforms: list[TransformStamped]) -> None:
        self._dynamic.sendTransform(transforms)

    def send_static(self, transforms: list[TransformStamped]) -> None:
        """Latched transforms; all of a node's static transforms go in one call (the latched message holds one)."""
        self._static.sendTransform(transforms)


class StaticTransforms:
    """Transforms received on ``/tf_static``: ``{(parent, child): (4, 4) T_parent_child}``."""

    def __init__(self, node: Node, topic: str = '/tf_static'):
        self.transforms: dict[tuple[str, str], np.ndarray] = {}
        self.sub = node.create_subscription(TFMessage, topic, self._on_message, qos.TF_STATIC_LISTENER)

    def _on_message(self, msg: TFMessage) -> None:
        for tf in msg.transforms:
            self.transforms[(tf.header.frame_id, tf.child_frame_id)] = transform_to_matrix(tf.transform)

    def lookup(self, parent: str, child: str) -> np.ndarray:
        """(4, 4) pose of ``child`` in ``parent``; TopicError when no chain of static transforms links them."""
        return find_chain(self.transforms, parent, child)


def camera_mount(node: Node, xyzq, base_frame: str, camera_frame: str, static_tf: StaticTransforms,
                 tf: TfPublisher | None, stamp) -> np.ndarray:
    """(4, 4) ``T_base_cam``: from ``xyzq`` (the ``camera_to_base`` parameter, [x, y, z, qx, qy, qz, qw]; then also
    published on ``/tf_static`` by ``tf``, stamped ``stamp``) or, when it is empty, from ``/tf_static``.

    Raises:
        TopicError: ``xyzq`` is not 7 numbers, or no chain of static transforms links the frames.
    """
    if xyzq:
        if len(xyzq) != 7:
            raise TopicError(f'camera_to_base needs 7 numbers [x, y, z, qx, qy, qz, qw], got {list(xyzq)}')
        T = pose_matrix(xyzq[:3], xyzq[3:])
        if tf is not None and base_frame != camera_frame:
            tf.send_static([transform_stamped(stamp, base_frame, camera_frame, T)])
        return T
    return static_tf.lookup(base_frame, camera_frame)
