"""Reader for frame folders in the Microsoft 7-Scenes layout.

A folder holds ``frame-XXXXXX.color.jpg`` (640x480 RGB; ``.png`` too), ``frame-XXXXXX.depth.png`` (uint16
millimetres; 0 and 65535 mean invalid), ``frame-XXXXXX.pose.txt`` (4x4 camera-to-world, metres) and optionally the
intrinsics files ``camera-intrinsics.txt`` (``DEPTH_INTRINSICS``) and ``color-intrinsics.txt``
(``COLOR_INTRINSICS``, 3x3 each). The sensor ran at 30 Hz and the set has no timestamps: frame ``i`` is stamped
``i / 30`` s, rounded to integer nanoseconds. Frames are named after their files (``frame-000123``).

Intrinsics: in 7-Scenes, ``camera-intrinsics.txt`` (fx = fy = 585) describes the depth camera, and published work
uses fx = fy = 525, cx = 320, cy = 240 (``COLOR_K``) for the colour images, which have no file of their own. A
folder's ``color-intrinsics.txt``, when present, gives the colour camera instead (the synthetic training folders of
``rapnet_loc.synth.frames`` have one). Without ``camera-intrinsics.txt`` the depth camera is the colour camera.
7-Scenes depth images are not registered to the colour camera (the offset is a few cm); they are returned as
stored, and ``depth_camera_info`` describes them.
"""
from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from rapnet_loc.errors import DatasetError, ImageFormatError
from rapnet_loc.io.types import CameraInfo, RGBDFrame

DEPTH_INTRINSICS = 'camera-intrinsics.txt'
COLOR_INTRINSICS = 'color-intrinsics.txt'
COLOR_K = np.array([[525.0, 0.0, 320.0], [0.0, 525.0, 240.0], [0.0, 0.0, 1.0]])
FPS = 30
DEPTH_SCALE = 0.001
DEPTH_INVALID = 65535
JPEG_START, JPEG_END = b'\xff\xd8', b'\xff\xd9'  # start- and end-of-image markers
_COLOR_NAME = re.compile(r'frame-(\d+)\.color\.(?:jpg|png)$')


def frame_stamp_ns(index: int) -> int:
    """Integer nanoseconds of frame ``index`` at 30 Hz: ``index * 1e9 / 30`` rounded half up."""
    return (index * 1_000_000_000 + FPS // 2) // FPS


def read_image(path: Path, flags: int, kind: str) -> np.ndarray:
    """The image file ``path`` decoded by OpenCV with ``flags``; ``kind`` names it in errors.

    Raises:
        ImageFormatError: missing, unreadable or not an image, or a JPEG without its end-of-image marker (truncated:
            OpenCV would decode it with the missing part grey and only a warning).
    """
    try:
        data = path.read_bytes()
    except OSError:
        data = b''
    if data[:2] == JPEG_START and data.rstrip(b'\0')[-2:] != JPEG_END:
        raise ImageFormatError(f'{kind} image {path} is a truncated JPEG (no end-of-image marker): damaged, or '
                               f'still being written')
    image = cv2.imdecode(np.frombuffer(data, np.uint8), flags) if data else None
    if image is None:
        raise ImageFormatError(f'cannot read {kind} image (missing, unreadable or not an image): {path}')
    return image


class SevenScenesFolder:
    """Frames ``first``..``last`` (inclusive file numbers; None = open end) of a 7-Scenes frame folder.

    Args:
        path: the folder.
        first, last: range of frame numbers to use.
        K: (3, 3) colour intrinsics overriding the folder's ``color-intrinsics.txt`` and ``COLOR_K``.
    Attributes:
        K: (3, 3) colour intrinsics in use; K_depth: (3, 3) the depth camera's (``K`` when the folder has no
            ``camera-intrinsics.txt``).
        indices: frame numbers in use, ascending.
    """

    def __init__(self, path: str | Path, first: int | None = None, last: int | None = None,
                 K: np.ndarray | None = None):
        self.path = Path(path)
        if not self.path.is_dir():
            raise DatasetError(f'7-Scenes frame folder not found: {self.path}')
        self.K = (self._intrinsics(COLOR_INTRINSICS, COLOR_K) if K is None
                  else np.asarray(K, dtype=np.float64).reshape(3, 3))
        self.K_depth = self._intrinsics(DEPTH_INTRINSICS, self.K)
        colors = {}
        for entry in self.path.iterdir():
            if match := _COLOR_NAME.match(entry.name):
                colors[int(match.group(1))] = entry
        if not colors:
            raise DatasetError(f'no frame-XXXXXX.color.jpg files in 7-Scenes folder {self.path}')
        self.indices = [i for i in sorted(colors) if (first is None or i >= first) and (last is None or i <= last)]
        if not self.indices:
            raise DatasetError(f'no frames numbered {first}..{last} in {self.path}; '
                               f'it has frames {min(colors)}..{max(colors)}')
        self._colors = {i: colors[i] for i in self.indices}
        for i in self.indices:
            if not self._file(i, 'depth.png').is_file():
                raise DatasetError(f'colour frame {self._colors[i].name} has no depth image '
                                   f'{self._file(i, "depth.png").name} in {self.path}')

    def _intrinsics(self, name: str, default: np.ndarray) -> np.ndarray:
        """(3, 3) matrix of the folder's file ``name``, or ``default`` when there is none."""
        path = self.path / name
        if not path.is_file():
            return default.copy()
        try:
            return np.loadtxt(path, dtype=np.float64).reshape(3, 3)
        except (OSError, ValueError) as exc:
            raise DatasetError(f'cannot read a 3x3 intrinsic matrix from {path}: {exc}') from None

    def _file(self, index: int, suffix: str) -> Path:
        return self.path / f'frame-{index:06d}.{suffix}'

    def __len__(self) -> int:
        return len(self.indices)

    def camera_info(self) -> CameraInfo:
        """Colour camera model: ``K``, no distortion, size of the first colour image."""
        height, width = self._color(self.indices[0]).shape[:2]
        return CameraInfo(width=width, height=height, K=self.K.copy(), frame_id='camera')

    def depth_camera_info(self) -> CameraInfo | None:
        """Intrinsics of the depth images when they differ from the colour camera's (not registered to colour, as
        in 7-Scenes), same size and frame; None when the depth is aligned to colour."""
        if np.allclose(self.K_depth, self.K):
            return None
        color = self.camera_info()
        return CameraInfo(color.width, color.height, self.K_depth.copy(), frame_id=color.frame_id)

    def _color(self, index: int) -> np.ndarray:
        return cv2.cvtColor(read_image(self._colors[index], cv2.IMREAD_COLOR, 'colour'), cv2.COLOR_BGR2RGB)

    def _depth(self, index: int) -> np.ndarray:
        path = self._file(index, 'depth.png')
        raw = read_image(path, cv2.IMREAD_UNCHANGED, 'depth')
        if raw.dtype != np.uint16 or raw.ndim != 2:
            raise ImageFormatError(f'depth image must be single-channel 16-bit millimetres, got {raw.dtype} '
                                   f'with shape {raw.shape}: {path}')
        return np.where(raw == DEPTH_INVALID, 0, raw).astype(np.float32) * np.float32(DEPTH_SCALE)

    def __iter__(self) -> Iterator[RGBDFrame]:
        """Frames in file order: ``index`` is the file number, colour (H, W, 3) uint8 RGB, depth (H, W) float32 m."""
        for i in self.indices:
            color, depth = self._color(i), self._depth(i)
            if color.shape[:2] != depth.shape:
                raise ImageFormatError(f'depth image {self._file(i, "depth.png").name} is '
                                       f'{depth.shape[1]}x{depth.shape[0]} but colour {self._colors[i].name} is '
                                       f'{color.shape[1]}x{color.shape[0]} in {self.path}')
            yield RGBDFrame(index=i, stamp_ns=frame_stamp_ns(i), color=color, depth=depth, frame_id='camera',
                            name=f'frame-{i:06d}')

    def poses(self) -> tuple[np.ndarray, np.ndarray]:
        """Stamps (N,) int64 ns and camera-to-world poses (N, 4, 4) of the frames in use."""
        poses = np.empty((len(self.indices), 4, 4))
        for n, i in enumerate(self.indices):
            path = self._file(i, 'pose.txt')
            try:
                poses[n] = np.loadtxt(path, dtype=np.float64).reshape(4, 4)
            except (OSError, ValueError) as exc:
                raise DatasetError(f'cannot read 4x4 pose matrix from {path}: {exc}') from exc
        stamps = np.array([frame_stamp_ns(i) for i in self.indices], dtype=np.int64)
        return stamps, poses
