"""Decoding and encoding of ``sensor_msgs/Image``-like messages, without ROS.

The message is duck-typed: any object with ``height``, ``width``, ``encoding``, ``is_bigendian``, ``step`` and
``data`` works (rosbags gives ``data`` as a uint8 ndarray, rclpy as ``array.array`` or ``bytes``).

Array shapes returned for each encoding (``ENCODINGS`` is the single table of them):

- ``rgb8``, ``bgr8``: (H, W, 3) uint8, in the message's own channel order;
- ``rgba8``, ``bgra8``: (H, W, 4) uint8, in the message's own channel order;
- ``mono8``: (H, W) uint8;
- ``mono16``, ``16UC1``: (H, W) uint16;
- ``32FC1``: (H, W) float32.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rapnet_loc.errors import ImageFormatError


@dataclass(frozen=True)
class Encoding:
    """Layout of one pixel: element type (native byte order) and channel count (0 = 2-D array)."""

    dtype: np.dtype
    channels: int

    @property
    def bytes_per_pixel(self) -> int:
        return self.dtype.itemsize * max(self.channels, 1)


ENCODINGS: dict[str, Encoding] = {
    'rgb8': Encoding(np.dtype(np.uint8), 3),
    'bgr8': Encoding(np.dtype(np.uint8), 3),
    'rgba8': Encoding(np.dtype(np.uint8), 4),
    'bgra8': Encoding(np.dtype(np.uint8), 4),
    'mono8': Encoding(np.dtype(np.uint8), 0),
    'mono16': Encoding(np.dtype(np.uint16), 0),
    '16UC1': Encoding(np.dtype(np.uint16), 0),
    '32FC1': Encoding(np.dtype(np.float32), 0),
}

BYTES_PER_PIXEL: dict[str, int] = {name: enc.bytes_per_pixel for name, enc in ENCODINGS.items()}

COLOR_ENCODINGS = ('rgb8', 'bgr8', 'rgba8', 'bgra8', 'mono8')
DEPTH_ENCODINGS = ('mono16', '16UC1', '32FC1')

# Channel indices that turn each colour encoding into RGB.
_TO_RGB = {'rgb8': [0, 1, 2], 'bgr8': [2, 1, 0], 'rgba8': [0, 1, 2], 'bgra8': [2, 1, 0]}


@dataclass(frozen=True)
class ImageFields:
    """Field values of a ``sensor_msgs/Image`` (without header); ``data`` is a 1-D uint8 array of ``height * step``."""

    height: int
    width: int
    encoding: str
    is_bigendian: int
    step: int
    data: np.ndarray


def _where(topic: str) -> str:
    return f" on topic '{topic}'" if topic else ''


def _lookup(encoding: str, topic: str) -> Encoding:
    try:
        return ENCODINGS[encoding]
    except KeyError:
        raise ImageFormatError(
            f"unsupported image encoding '{encoding}'{_where(topic)}; supported: {', '.join(ENCODINGS)}") from None


def decode_image(msg, topic: str = '') -> np.ndarray:
    """Pixel array of an Image-like message, in its own encoding and channel order.

    Honours ``step`` row padding and ``is_bigendian``. Returns (H, W) or (H, W, C) as listed in the module
    docstring; the result is a fresh native-byte-order array that owns its memory.

    Raises:
        ImageFormatError: unsupported encoding, no pixels, ``step`` smaller than a row, or data size not
            ``height * step``.
    """
    encoding = str(msg.encoding)
    enc = _lookup(encoding, topic)
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height <= 0 or width <= 0:
        raise ImageFormatError(f"image{_where(topic)} ({encoding}) is {width}x{height}: it has no pixels")
    row_bytes = width * enc.bytes_per_pixel
    if step < row_bytes:
        raise ImageFormatError(f"image{_where(topic)} ({encoding}, {width}x{height}): step {step} is smaller "
                               f"than width * bytes per pixel = {row_bytes}")
    raw = np.frombuffer(msg.data, dtype=np.uint8) if not isinstance(msg.data, np.ndarray) else msg.data
    raw = raw.reshape(-1).view(np.uint8)
    if raw.size != height * step:
        raise ImageFormatError(f"image{_where(topic)} ({encoding}, {width}x{height}): data has {raw.size} bytes, "
                               f"expected height * step = {height} * {step} = {height * step}")
    rows = raw.reshape(height, step)[:, :row_bytes]
    dtype = enc.dtype.newbyteorder('>' if msg.is_bigendian else '<')
    pixels = np.ascontiguousarray(rows).view(dtype).astype(enc.dtype, copy=True)
    shape = (height, width, enc.channels) if enc.channels else (height, width)
    return pixels.reshape(shape)


def _require_kind(msg, topic: str, allowed: tuple[str, ...], kind: str) -> str:
    """The message's encoding, checked to be one of ``allowed`` (the ``kind`` of image the caller needs)."""
    encoding = str(msg.encoding)
    if encoding not in allowed:
        raise ImageFormatError(f"image encoding '{encoding}'{_where(topic)} is not a {kind} encoding; "
                               f"expected one of {', '.join(allowed)}")
    return encoding


def to_rgb(msg, topic: str = '') -> np.ndarray:
    """(H, W, 3) uint8 RGB image of a colour (rgb8/bgr8/rgba8/bgra8) or mono8 message; mono is replicated."""
    encoding = _require_kind(msg, topic, COLOR_ENCODINGS, 'colour')
    img = decode_image(msg, topic)
    if encoding == 'mono8':
        return np.repeat(img[:, :, None], 3, axis=2)
    return np.ascontiguousarray(img[:, :, _TO_RGB[encoding]])


def to_depth_m(msg, topic: str = '', depth_scale: float = 0.001) -> np.ndarray:
    """(H, W) float32 depth in metres; 0 marks invalid pixels.

    ``16UC1``/``mono16`` values are multiplied by ``depth_scale`` (metres per unit; 0 stays 0). ``32FC1`` is taken
    as metres, with NaN, inf and negative values set to 0.
    """
    encoding = _require_kind(msg, topic, DEPTH_ENCODINGS, 'depth')
    img = decode_image(msg, topic)
    if encoding == '32FC1':
        return np.where(np.isfinite(img) & (img > 0), img, np.float32(0)).astype(np.float32)
    return (img.astype(np.float32) * np.float32(depth_scale)).astype(np.float32)


def encode_image(array: np.ndarray, encoding: str) -> ImageFields:
    """Image message fields for ``array`` in ``encoding``: little-endian, unpadded (``step = width * bpp``).

    Args:
        array: (H, W) or (H, W, C) array whose dtype and channel count match ``encoding`` (see ``ENCODINGS``);
            colour channels are taken to be in the encoding's order already.
    Raises:
        ImageFormatError: unsupported encoding, or dtype/shape not matching it.
    """
    enc = _lookup(encoding, '')
    array = np.asarray(array)
    shape_ok = array.ndim == 3 and array.shape[2] == enc.channels if enc.channels else array.ndim == 2
    if not shape_ok or array.dtype.newbyteorder('=') != enc.dtype:
        want = f'(H, W, {enc.channels})' if enc.channels else '(H, W)'
        raise ImageFormatError(f"cannot encode an array of shape {array.shape} and dtype {array.dtype} as "
                               f"'{encoding}': expected {want} {enc.dtype}")
    height, width = array.shape[:2]
    little = np.ascontiguousarray(array, dtype=enc.dtype.newbyteorder('<'))
    return ImageFields(height=int(height), width=int(width), encoding=encoding, is_bigendian=0,
                       step=int(width * enc.bytes_per_pixel), data=little.reshape(-1).view(np.uint8).copy())
