"""Real rclpy for the node tests: an isolated context (own DDS domain), an executor spinning on a thread, a recorder
of published messages, and a bag's messages converted to rclpy messages.

rclpy and the message packages come from PyPI (requirements-ros.txt) and tf2_msgs from scripts/build_tf2_msgs.sh.
Their ros-wheels-bootstrapper re-executes the venv's Python once at start-up with LD_LIBRARY_PATH set and marks
that in _ROS_WHEELS_BOOTSTRAP_COMPLETE; a Python started with that mark inherited from another environment cannot
load rclpy's libraries (ImportError at collection: run the tests with a clean environment).
"""
from __future__ import annotations

import contextlib
import importlib
import os
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator

import cv2
import numpy as np
import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header

from rapnet_loc.io.bag import BagReader
from rapnet_loc.io.images import encode_image
from rapnet_loc.nodes import qos
from rapnet_loc.nodes.convert import to_stamp
from rapnet_loc.nodes.feature_node import IMAGE_TOPIC
from rapnet_loc.nodes.frontend_node import CAMERA_INFO_TOPIC, DEPTH_TOPIC


@contextlib.contextmanager
def ros_session() -> Iterator[rclpy.Context]:
    """An initialised rclpy context on a DDS domain of its own (so parallel test runs do not talk)."""
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=1 + os.getpid() % 100)
    try:
        yield context
    finally:
        rclpy.try_shutdown(context=context)


@pytest.fixture
def ros_context():
    with ros_session() as context:
        yield context


class Graph:
    """Nodes of one context spun by a single-threaded executor on a background thread (as the nodes spin).

    Not rclpy's ``MultiThreadedExecutor``: its spinning thread kept the interpreter lock for seconds at a time
    (a 0.1 s ``time.sleep`` of the publishing thread returned after 2-4 s), so a test or player publishing from
    the main thread sent its messages in bursts."""

    def __init__(self, context):
        self.context = context
        self.executor = SingleThreadedExecutor(context=context)
        self.nodes: list[Node] = []
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._running = True
        self._thread.start()

    def _spin(self) -> None:
        while self._running and self.context.ok():
            self.executor.spin_once(timeout_sec=0.02)

    def add(self, node: Node) -> Node:
        self.nodes.append(node)
        self.executor.add_node(node)
        return node

    def remove(self, node: Node) -> None:
        """Stop spinning ``node`` and destroy it."""
        self.nodes.remove(node)
        self.executor.remove_node(node)
        node.destroy_node()

    def node(self, name: str) -> Node:
        return self.add(rclpy.create_node(name, context=self.context))

    def close(self) -> None:
        self._running = False
        self._thread.join()
        for node in self.nodes:
            self.executor.remove_node(node)
            node.destroy_node()
        self.executor.shutdown()


@pytest.fixture
def graph(ros_context):
    g = Graph(ros_context)
    yield g
    g.close()


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``predicate`` until true; fail the test naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f'timed out after {timeout} s waiting for {what}')
        time.sleep(0.01)


class Recorder:
    """Messages received per topic: ``recorder[topic]`` is the list in arrival order."""

    def __init__(self, node: Node, topics: dict[str, tuple[type, object]]):
        self.messages: dict[str, list] = defaultdict(list)
        self._lock = threading.Lock()
        self.subs = [node.create_subscription(cls, topic, self._store(topic), qos)
                     for topic, (cls, qos) in topics.items()]

    def _store(self, topic: str) -> Callable:
        def store(msg) -> None:
            with self._lock:
                self.messages[topic].append(msg)
        return store

    def __getitem__(self, topic: str) -> list:
        with self._lock:
            return list(self.messages[topic])


def _message_class(type_name: str) -> type:
    """rclpy class of ``pkg/Name``."""
    pkg, name = type_name.split('/')
    return getattr(importlib.import_module(f'{pkg}.msg'), name)


def to_rclpy(src, cls: type):
    """rclpy message ``cls`` with the fields of a rosbags message ``src`` (ROS 1 or 2; ROS 1's ``K`` is ``k``)."""
    msg = cls()
    for name, typ in cls.get_fields_and_field_types().items():
        value = getattr(src, name) if hasattr(src, name) else getattr(src, name.upper())
        if typ.startswith('sequence<') and '/' in typ:
            setattr(msg, name, [to_rclpy(v, _message_class(typ[9:-1])) for v in value])
        elif '/' in typ:
            setattr(msg, name, to_rclpy(value, _message_class(typ)))
        elif typ == 'sequence<uint8>':
            setattr(msg, name, np.asarray(value, np.uint8).tobytes())
        elif isinstance(value, np.ndarray):
            setattr(msg, name, value.tolist() if typ.startswith('sequence<') else value)
        else:
            setattr(msg, name, value)
    return msg


def bag_messages(path, topics: dict[str, type]) -> Iterator[tuple[str, int, object]]:
    """``(topic, receive time ns, rclpy message)`` of ``topics`` ({topic: rclpy class}) in bag order."""
    with BagReader(path) as bag:
        for m in bag.messages(list(topics)):
            yield m.topic, m.stamp_ns, to_rclpy(m.msg, topics[m.topic])


def textured_image(seed: int, width: int = 320, height: int = 240) -> np.ndarray:
    """(H, W, 3) uint8 RGB blurred noise: plenty of corners."""
    rng = np.random.default_rng(seed)
    img = cv2.GaussianBlur(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), (5, 5), 1.5)
    return cv2.resize(cv2.resize(img, (width // 4, height // 4)), (width, height), interpolation=cv2.INTER_NEAREST)


def image_msg(rgb: np.ndarray, stamp_ns: int, encoding: str = 'rgb8', frame_id: str = 'd400_color') -> Image:
    f = encode_image(rgb, encoding)
    return Image(header=Header(stamp=to_stamp(stamp_ns), frame_id=frame_id), height=f.height, width=f.width,
                 encoding=f.encoding, is_bigendian=f.is_bigendian, step=f.step, data=f.data.tobytes())


def camera_info_msg(width: int = 320, height: int = 240) -> CameraInfo:
    """A pinhole camera of fx = fy = 300 centred in a ``width`` x ``height`` image, frame ``d400_color``."""
    msg = CameraInfo(width=width, height=height, distortion_model='plumb_bob', d=[0.0] * 5)
    msg.k = [300.0, 0.0, width / 2, 0.0, 300.0, height / 2, 0.0, 0.0, 1.0]
    msg.header.frame_id = 'd400_color'
    return msg


def depth_msg(stamp: int, width: int = 320, height: int = 240, metres: np.ndarray | None = None) -> Image:
    """A flat 16UC1 depth image at 1.5 m, or ``metres`` (H, W) as 32FC1."""
    if metres is not None:
        return image_msg(metres.astype(np.float32), stamp, '32FC1')
    return image_msg(np.full((height, width), 1500, np.uint16), stamp, '16UC1')


def frontend_publishers(node: Node) -> tuple:
    """Publishers of ``node`` on the front end's inputs (the defaults of ``rapnet_loc.nodes.frontend_node``): colour
    (``feature_node``'s image topic, for ``extract_in_process``), depth and the latched camera info."""
    return (node.create_publisher(Image, IMAGE_TOPIC, qos.RELIABLE),
            node.create_publisher(Image, DEPTH_TOPIC, qos.RELIABLE),
            node.create_publisher(CameraInfo, CAMERA_INFO_TOPIC, qos.LATCHED))
