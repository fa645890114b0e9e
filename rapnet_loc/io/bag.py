"""Reading ROS 1 bags (uncompressed, bz2, lz4) and ROS 2 bags (sqlite3, mcap) through ``rosbags``, without ROS.

Accepted paths: a ROS 1 ``.bag`` file, a ROS 2 bag directory (with ``metadata.yaml``), or a bare ``.db3`` /
``.mcap`` file. Messages are deserialized with the type definitions stored in the bag; ROS 2 bags without
stored definitions fall back to ``ros2_typestore()``. Every failure of ``rosbags`` is re-raised as ``BagError``
naming the file and what is wrong.
"""
from __future__ import annotations

import sqlite3
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from rosbags.highlevel import AnyReader, AnyReaderError
from rosbags.rosbag1 import ReaderError as Ros1ReaderError
from rosbags.rosbag2 import ReaderError as Ros2ReaderError
from rosbags.serde import SerdeError
from rosbags.typesys import Stores, TypesysError, get_types_from_msg, get_typestore
from rosbags.typesys.store import Typestore

from rapnet_loc.errors import BagError, TopicError

ROS1_MAGIC = b'#ROSBAG V2.0\n'
ROS2_FILE_SUFFIXES = ('.db3', '.mcap')
# Exceptions that rosbags and the libraries under it (sqlite3, bz2, lz4, struct) raise for damaged bags.
_READ_ERRORS = (AnyReaderError, Ros1ReaderError, Ros2ReaderError, SerdeError, TypesysError, sqlite3.Error,
                struct.error, OSError, EOFError, ValueError, KeyError, IndexError, RuntimeError)

# ``tf/tfMessage`` (ROS 1 tf) and ``tf2_msgs/TFMessage`` share this definition.
_TF_MESSAGE_DEF = 'geometry_msgs/TransformStamped[] transforms\n'
TF_MSGTYPES = ('tf2_msgs/msg/TFMessage', 'tf/msg/tfMessage')


def _with_tf_types(store: Stores) -> Typestore:
    typestore = get_typestore(store)
    for msgtype in TF_MSGTYPES:
        if msgtype not in typestore.fielddefs:
            typestore.register(get_types_from_msg(_TF_MESSAGE_DEF, msgtype))
    return typestore


def ros1_typestore() -> Typestore:
    """ROS 1 Noetic typestore plus ``tf2_msgs/msg/TFMessage`` and ``tf/msg/tfMessage`` (for writing ROS 1 bags)."""
    return _with_tf_types(Stores.ROS1_NOETIC)


def ros2_typestore() -> Typestore:
    """Latest ROS 2 typestore plus ``tf/msg/tfMessage``; used for ROS 2 bags without stored definitions."""
    return _with_tf_types(Stores.LATEST)


def stamp_ns(stamp) -> int:
    """Integer nanoseconds of a ``builtin_interfaces/Time``-like object (``sec``, ``nanosec``)."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


@dataclass(frozen=True)
class TopicSummary:
    """One topic of a bag: message type (``pkg/msg/Name``; None when connections disagree) and message count."""

    name: str
    msgtype: str | None
    count: int


class BagMessage(NamedTuple):
    """One deserialized message: topic, bag receive time (ns), ``msg.header`` or None, and the message."""

    topic: str
    stamp_ns: int
    header: Any
    msg: Any


class RawMessage(NamedTuple):
    """One serialized message: topic, bag receive time (ns), message type and the bytes as stored."""

    topic: str
    stamp_ns: int
    msgtype: str
    data: bytes


def _ros1_index_pos(path: Path) -> int | None:
    """Byte offset of the index that the ROS 1 bag header announces, or None when the header is unreadable."""
    with path.open('rb') as fh:
        fh.seek(len(ROS1_MAGIC))
        raw = fh.read(4)
        header = fh.read(struct.unpack('<I', raw)[0]) if len(raw) == 4 else b''
    while len(header) >= 4:
        size = struct.unpack_from('<I', header)[0]
        name, _, value = header[4:4 + size].partition(b'=')
        if name == b'index_pos' and len(value) == 8:
            return struct.unpack('<Q', value)[0]
        header = header[4 + size:]
    return None


def _check_path(path: Path) -> bool:
    """True for a ROS 2 bag, False for a ROS 1 bag; BagError unless ``AnyReader`` will dispatch it correctly."""
    if not path.exists():
        raise BagError(f'bag not found: {path}')
    if path.is_dir():
        if not (path / 'metadata.yaml').is_file():
            raise BagError(f'not a ROS 2 bag directory (no metadata.yaml): {path}')
        return True
    try:
        with path.open('rb') as fh:
            head = fh.read(len(ROS1_MAGIC))
        index_pos = _ros1_index_pos(path) if head == ROS1_MAGIC else None
    except OSError as exc:
        raise BagError(f'cannot read bag file {path}: {exc.strerror or exc}') from exc
    if head == ROS1_MAGIC:
        if path.suffix != '.bag':
            raise BagError(f'ROS 1 bag must have the .bag extension to be read: {path}')
        size = path.stat().st_size
        if index_pos is not None and index_pos >= size:
            raise BagError(f'bag is truncated (its index should start at byte {index_pos} but the file has '
                           f'{size} bytes; was the recording interrupted or the copy incomplete?): {path}')
        return False
    if path.suffix == '.bag':
        what = 'an unsupported ROS 1 bag version' if head.startswith(b'#ROSBAG') else 'no ROS 1 bag header'
        raise BagError(f'not a ROS 1 bag (format 2.0 expected, found {what}): {path}')
    if path.suffix not in ROS2_FILE_SUFFIXES:
        raise BagError(f'not a bag: expected a ROS 1 .bag file, a ROS 2 bag directory or a .db3/.mcap file: {path}')
    return True


class BagReader:
    """An open bag. Use as a context manager (``with open_bag(path) as bag:``) or call ``close()``.

    Attributes:
        path: the bag path.
        is_ros2: True for ROS 2 bags.
        topics: ``{name: TopicSummary}`` of every topic.
        start_ns, end_ns: receive times of the first and last message (ns).
        message_count: number of messages in the bag.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.is_ros2 = _check_path(self.path)
        try:
            self._reader = AnyReader([self.path], default_typestore=ros2_typestore() if self.is_ros2 else None)
            self._reader.open()
        except _READ_ERRORS as exc:
            raise BagError(f'cannot open bag {self.path}: damaged or unreadable ({exc})') from exc
        self._open = True
        try:
            self.topics = {name: TopicSummary(name, info.msgtype, info.msgcount)
                           for name, info in self._reader.topics.items()}
            self.message_count = self._reader.message_count
            if self.message_count == 0:
                raise BagError(f'bag has no messages: {self.path}')
            self.start_ns = self._reader.start_time
            self.end_ns = self._reader.end_time - 1
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> BagReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Close the underlying files; safe to call twice."""
        if self._open:
            self._open = False
            self._reader.close()

    def msgtype(self, topic: str) -> str | None:
        """Message type of ``topic`` (``pkg/msg/Name``); raises TopicError when absent."""
        return self._summary(topic).msgtype

    def _summary(self, topic: str) -> TopicSummary:
        try:
            return self.topics[topic]
        except KeyError:
            raise TopicError(f"topic '{topic}' not in bag {self.path}; it has: "
                             f"{', '.join(sorted(self.topics)) or 'no topics'}") from None

    def _connections(self, topics: Iterable[str] | None) -> list:
        if topics is None:
            return list(self._reader.connections)
        wanted = {self._summary(t).name for t in topics}
        return [c for c in self._reader.connections if c.topic in wanted]

    def _raw(self, connections: list, start_ns: int | None, end_ns: int | None) -> Iterator[tuple[Any, int, bytes]]:
        if not connections:  # rosbags reads every topic when given none
            return
        stop = None if end_ns is None else end_ns + 1
        try:
            yield from self._reader.messages(connections, start=start_ns, stop=stop)
        except _READ_ERRORS as exc:
            raise BagError(f'cannot read messages from bag {self.path}: damaged or unreadable ({exc})') from exc

    def raw_messages(self, topics: Iterable[str] | None = None, start_ns: int | None = None,
                     end_ns: int | None = None) -> Iterator[RawMessage]:
        """Serialized messages in receive-time order, as stored (ROS 1 or CDR bytes).

        Args:
            topics: topic names to read (all when None); an absent topic raises TopicError here.
            start_ns, end_ns: inclusive bounds on the receive time (ns); None leaves that side open.
        """
        raw = self._raw(self._connections(topics), start_ns, end_ns)
        return (RawMessage(conn.topic, stamp, conn.msgtype, bytes(data)) for conn, stamp, data in raw)

    def messages(self, topics: Iterable[str] | None = None, start_ns: int | None = None,
                 end_ns: int | None = None) -> Iterator[BagMessage]:
        """Deserialized messages in receive-time order; arguments as in ``raw_messages``."""
        return self._deserialized(self._raw(self._connections(topics), start_ns, end_ns))

    def _deserialized(self, raw: Iterator[tuple[Any, int, bytes]]) -> Iterator[BagMessage]:
        for conn, stamp, data in raw:
            try:
                msg = self._reader.deserialize(data, conn.msgtype)
            except _READ_ERRORS as exc:
                raise BagError(f"cannot deserialize a {conn.msgtype} message on topic '{conn.topic}' at "
                               f'{stamp} ns in bag {self.path}: {exc}') from exc
            yield BagMessage(conn.topic, stamp, getattr(msg, 'header', None), msg)


def open_bag(path: str | Path) -> BagReader:
    """Open a ROS 1 or ROS 2 bag; raises BagError for a missing, foreign, damaged or empty bag."""
    return BagReader(path)
