"""Typed access to OpenLORIS-Scene bags (and bags of other datasets with the same kinds of topics).

Topics (defaults from the OpenLORIS ``calibration.yaml``): colour images (rgb8), depth aligned to colour
(16UC1/mono16 millimetres), the colour ``CameraInfo`` published once at bag start, ``/tf_static`` and ``/gt``
(``tf2_msgs/TFMessage``) and ``/odom`` (``nav_msgs/Odometry``). Images are streamed: colour and depth are paired
on the fly by header stamp, so only a few messages are held in memory at a time.
"""
from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from rapnet_loc.errors import BagError, ConfigError, ImageFormatError, TopicError
from rapnet_loc.geometry import pose_matrix
from rapnet_loc.io.bag import TF_MSGTYPES, BagReader, stamp_ns
from rapnet_loc.io.images import to_depth_m, to_rgb
from rapnet_loc.io.types import CameraInfo, RGBDFrame

LOG = logging.getLogger(__name__)

IMAGE_MSGTYPE = 'sensor_msgs/msg/Image'
CAMERA_INFO_MSGTYPE = 'sensor_msgs/msg/CameraInfo'
ODOMETRY_MSGTYPE = 'nav_msgs/msg/Odometry'
POSE_MSGTYPES = (*TF_MSGTYPES, ODOMETRY_MSGTYPE)
# Largest delay between the arrival of an image and of its partner: depth images are read this far beyond a
# colour time window, and pairing gives up on an image once the streams have moved on by this much.
WINDOW_MARGIN_S = 1.0


@dataclass(frozen=True)
class OpenLORISTopics:
    """Topic names of the streams that ``OpenLORISBag`` reads."""

    color: str = '/d400/color/image_raw'
    depth: str = '/d400/aligned_depth_to_color/image_raw'
    camera_info: str = '/d400/color/camera_info'
    tf_static: str = '/tf_static'
    ground_truth: str = '/gt'
    odometry: str = '/odom'

    @classmethod
    def from_dict(cls, values: dict[str, str]) -> OpenLORISTopics:
        """Topics from a mapping of field name to topic; missing fields keep their defaults."""
        known = {f.name for f in fields(cls)}
        if unknown := sorted(set(values) - known):
            raise ConfigError(f"unknown topic key(s) {', '.join(unknown)}; valid keys: {', '.join(sorted(known))}")
        return cls(**{k: str(v) for k, v in values.items()})


@dataclass
class PairingReport:
    """Outcome of pairing colour with depth in one ``rgbd_frames`` pass."""

    paired: int = 0
    unpaired_color: int = 0
    unpaired_depth: int = 0


def seconds_window(bag_start_ns: int, first_s: float | None = None,
                   last_s: float | None = None) -> tuple[int | None, int | None]:
    """Absolute ``(start_ns, end_ns)`` bounds of the window ``[first_s, last_s]`` seconds after ``bag_start_ns``.

    ``None`` leaves that side open; the result feeds ``OpenLORISBag.rgbd_frames``.
    """
    def absolute(seconds: float | None) -> int | None:
        return None if seconds is None else bag_start_ns + round(seconds * 1e9)

    if first_s is not None and last_s is not None and last_s < first_s:
        raise ConfigError(f'frame window ends before it starts: {first_s} s to {last_s} s')
    return absolute(first_s), absolute(last_s)


def _matrix(t, q) -> np.ndarray:
    """(4, 4) pose from a ``Vector3``/``Point``-like ``t`` and a ``Quaternion``-like ``q``."""
    return pose_matrix([t.x, t.y, t.z], [q.x, q.y, q.z, q.w])


class OpenLORISBag:
    """An OpenLORIS-layout bag; a context manager that keeps the bag open.

    Args:
        path: ROS 1 or ROS 2 bag (see ``rapnet_loc.io.bag``).
        topics: topic names.
        max_pair_dt_s: largest colour/depth header stamp difference accepted as a pair.
        depth_scale: metres per unit of 16-bit depth images.
    Attributes:
        start_ns, end_ns: receive times of the bag's first and last message.
        pairing: ``PairingReport`` of the latest ``rgbd_frames`` pass (complete once it is exhausted).
    """

    def __init__(self, path: str | Path, topics: OpenLORISTopics = OpenLORISTopics(),
                 max_pair_dt_s: float = 0.02, depth_scale: float = 0.001):
        if not max_pair_dt_s > 0:
            raise ConfigError(f'max_pair_dt_s must be positive, got {max_pair_dt_s}')
        self.topics = topics
        self.max_pair_dt_ns = round(max_pair_dt_s * 1e9)
        self.depth_scale = depth_scale
        self.pairing = PairingReport()
        self.bag = BagReader(path)
        self.start_ns, self.end_ns = self.bag.start_ns, self.bag.end_ns

    def __enter__(self) -> OpenLORISBag:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.bag.close()

    def _require(self, topic: str, msgtypes: Iterable[str]) -> str:
        """Message type of ``topic``; TopicError when it is absent or of none of ``msgtypes``."""
        msgtype = self.bag.msgtype(topic)
        if msgtype not in msgtypes:
            raise TopicError(f"topic '{topic}' in bag {self.bag.path} holds {msgtype}, expected "
                             f"{' or '.join(msgtypes)}")
        return msgtype

    def camera_info(self) -> CameraInfo:
        """Intrinsics from the first message on the camera-info topic (ROS 1 ``K``/``D`` or ROS 2 ``k``/``d``)."""
        topic = self.topics.camera_info
        self._require(topic, [CAMERA_INFO_MSGTYPE])
        for message in self.bag.messages([topic]):
            msg = message.msg
            k = getattr(msg, 'k', None)
            d = getattr(msg, 'd', None)
            return CameraInfo(width=int(msg.width), height=int(msg.height),
                              K=np.asarray(msg.K if k is None else k, dtype=np.float64).reshape(3, 3),
                              D=np.asarray(msg.D if d is None else d, dtype=np.float64),
                              distortion_model=str(msg.distortion_model), frame_id=str(msg.header.frame_id))
        raise TopicError(f"topic '{topic}' in bag {self.bag.path} has no messages; camera info is needed")

    def static_transforms(self) -> dict[tuple[str, str], np.ndarray]:
        """``{(parent, child): (4, 4) T_parent_child}`` from every message on the static-transform topic."""
        topic = self.topics.tf_static
        self._require(topic, TF_MSGTYPES)
        return {(tf.header.frame_id, tf.child_frame_id): _matrix(tf.transform.translation, tf.transform.rotation)
                for message in self.bag.messages([topic]) for tf in message.msg.transforms}

    def ground_truth(self) -> tuple[np.ndarray, np.ndarray]:
        """Ground-truth poses (``gt_map`` -> ``base_link`` in OpenLORIS): see ``poses``."""
        return self.poses(self.topics.ground_truth)

    def odometry(self) -> tuple[np.ndarray, np.ndarray]:
        """Wheel-odometry poses: see ``poses``."""
        return self.poses(self.topics.odometry)

    def poses(self, topic: str) -> tuple[np.ndarray, np.ndarray]:
        """Header stamps (N,) int64 ns and poses (N, 4, 4) on ``topic``, sorted by stamp.

        ``topic`` holds ``TFMessage`` (every transform must share one parent/child pair) or ``Odometry`` messages.
        A damaged part of the bag ends them there, with a warning, as it ends the frames (``rgbd_frames``).

        Raises:
            BagError: the damage comes before the first pose.
        """
        msgtype = self._require(topic, POSE_MSGTYPES)
        stamps, poses, pairs = [], [], set()
        try:
            for message in self.bag.messages([topic]):
                msg = message.msg
                if msgtype in TF_MSGTYPES:
                    for tf in msg.transforms:
                        pairs.add((tf.header.frame_id, tf.child_frame_id))
                        stamps.append(stamp_ns(tf.header.stamp))
                        poses.append(_matrix(tf.transform.translation, tf.transform.rotation))
                else:
                    stamps.append(stamp_ns(msg.header.stamp))
                    poses.append(_matrix(msg.pose.pose.position, msg.pose.pose.orientation))
        except BagError as exc:
            if not stamps:
                raise
            LOG.warning("the poses on '%s' end after %d at a damaged part of the bag: %s", topic, len(stamps), exc)
        if len(pairs) > 1:
            raise TopicError(f"topic '{topic}' in bag {self.bag.path} mixes transforms of several frame pairs "
                             f"{sorted(pairs)}; expected one trajectory")
        stamps_arr = np.asarray(stamps, dtype=np.int64)
        order = np.argsort(stamps_arr, kind='stable')
        return stamps_arr[order], np.asarray(poses, dtype=np.float64).reshape(-1, 4, 4)[order]

    def rgbd_frames(self, start_ns: int | None = None, end_ns: int | None = None) -> Iterator[RGBDFrame]:
        """Colour/depth pairs in colour order, decoded one at a time.

        Each colour image takes the unused depth image whose header stamp is nearest to its own, if within
        ``max_pair_dt_s`` (header stamps are assumed to increase on each topic). ``start_ns``/``end_ns``
        (inclusive, e.g. from ``seconds_window``) select colour images by bag receive time; depth images are read
        up to ``WINDOW_MARGIN_S`` beyond so that frames at the edges keep their partners. The counts of unpaired
        images in the window are in ``self.pairing`` (and logged) once the iterator is exhausted.

        Raises:
            TopicError: (at the call) colour or depth topic absent or not ``sensor_msgs/Image``.
            ImageFormatError: (while iterating) an image that cannot be decoded as colour or depth.
        """
        self._require(self.topics.color, [IMAGE_MSGTYPE])
        self._require(self.topics.depth, [IMAGE_MSGTYPE])
        return self._paired_frames(start_ns, end_ns)

    def _paired_frames(self, start_ns: int | None, end_ns: int | None) -> Iterator[RGBDFrame]:
        color_topic, depth_topic = self.topics.color, self.topics.depth
        self.pairing = report = PairingReport()
        margin = round(WINDOW_MARGIN_S * 1e9) + self.max_pair_dt_ns
        lo = -np.inf if start_ns is None else start_ns
        hi = np.inf if end_ns is None else end_ns
        messages = self.bag.messages([color_topic, depth_topic], None if start_ns is None else start_ns - margin,
                                     None if end_ns is None else end_ns + margin)
        events = ((m.topic == color_topic, stamp_ns(m.header.stamp), m) for m in messages
                  if m.topic == depth_topic or lo <= m.stamp_ns <= hi)
        for color, depth in pair_nearest(events, self.max_pair_dt_ns, round(WINDOW_MARGIN_S * 1e9)):
            if color is None:
                report.unpaired_depth += int(lo <= depth.stamp_ns <= hi)
            elif depth is None:
                report.unpaired_color += 1
            else:
                yield self._frame(report.paired, color.msg, depth.msg)
                report.paired += 1
        log = LOG.warning if report.unpaired_color or report.unpaired_depth else LOG.info
        log('%s: %d colour/depth pairs, %d unpaired colour and %d unpaired depth images (max dt %.3f s)',
            self.bag.path, report.paired, report.unpaired_color, report.unpaired_depth, self.max_pair_dt_ns / 1e9)

    def frames_in_range(self, first_s: float | None = None, last_s: float | None = None) -> Iterator[RGBDFrame]:
        """``rgbd_frames`` of the colour images received ``first_s``..``last_s`` seconds after the bag start."""
        return self.rgbd_frames(*seconds_window(self.start_ns, first_s, last_s))

    def _frame(self, index: int, color, depth) -> RGBDFrame:
        """Decode one pair of Image messages into an ``RGBDFrame``."""
        color_topic, depth_topic = self.topics.color, self.topics.depth
        rgb = to_rgb(color, color_topic)
        depth_m = to_depth_m(depth, depth_topic, self.depth_scale)
        if rgb.shape[:2] != depth_m.shape:
            raise ImageFormatError(f"depth image on '{depth_topic}' is {depth_m.shape[1]}x{depth_m.shape[0]} "
                                   f"but colour on '{color_topic}' is {rgb.shape[1]}x{rgb.shape[0]}; "
                                   f"depth must be aligned to colour (bag {self.bag.path})")
        return RGBDFrame(index=index, stamp_ns=stamp_ns(color.header.stamp), color=rgb, depth=depth_m,
                         frame_id=str(color.header.frame_id))


def pair_nearest(events: Iterable[tuple[bool, int, Any]], max_dt_ns: int,
                 max_lag_ns: int) -> Iterator[tuple[Any, Any]]:
    """Stream-pair colour and depth items: each colour takes the nearest unused depth within ``max_dt_ns``.

    Args:
        events: ``(is_color, stamp_ns, item)`` in arrival order; stamps increase on each stream, and an item
            arrives at most ``max_lag_ns`` (in stamp time) after the items of the other stream it may pair with.
    Yields:
        ``(color_item, depth_item)`` in colour order, ``(color_item, None)`` for a colour without depth and
        ``(None, depth_item)`` for a depth that no colour took. A colour is settled as soon as a depth stamped
        more than ``max_dt_ns`` after it, or any item stamped more than ``max_lag_ns`` after it, has arrived, so
        memory holds only the items of that window even when one stream stops.
    """
    colors: deque[tuple[int, Any]] = deque()
    depths: list[tuple[int, Any]] = []
    latest = latest_depth = None

    def settle(stamp: int, item: Any) -> Iterator[tuple[Any, Any]]:
        while depths and depths[0][0] < stamp - max_dt_ns:
            yield None, depths.pop(0)[1]
        best = min(range(len(depths)), key=lambda i: abs(depths[i][0] - stamp), default=None)
        if best is None or abs(depths[best][0] - stamp) > max_dt_ns:
            yield item, None
        else:
            yield item, depths.pop(best)[1]

    for is_color, stamp, item in events:
        latest = stamp if latest is None else max(latest, stamp)
        if is_color:
            colors.append((stamp, item))
        else:
            depths.append((stamp, item))
            latest_depth = stamp if latest_depth is None else max(latest_depth, stamp)
        while colors and (colors[0][0] < latest - max_lag_ns
                          or (latest_depth is not None and latest_depth > colors[0][0] + max_dt_ns)):
            yield from settle(*colors.popleft())
        # no pending or future colour is within max_dt_ns of these
        while depths and depths[0][0] < latest - max_lag_ns - max_dt_ns:
            yield None, depths.pop(0)[1]
    while colors:
        yield from settle(*colors.popleft())
    for _, item in depths:
        yield None, item
