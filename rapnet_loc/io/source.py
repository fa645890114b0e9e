"""RGB-D sources: a bag or a frame folder behind one interface, with a frame-range selector.

``open_source(path, frames)`` opens an OpenLORIS-style bag (ROS 1 file or ROS 2 folder, ``BagSource``) or a
folder in the 7-Scenes layout (``FrameFolderSource``: 7-Scenes itself, or the synthetic folders of
``rapnet_loc.synth.frames``). Both give the colour camera, the depth camera where depth is not registered to colour,
the frames, ground-truth camera poses and, for bags, the static transforms and wheel odometry.

Frame ranges (``--frames FIRST:LAST``, ``parse_frame_range``): file numbers of a folder, or seconds from the start
of a bag; either side may be open.

Damaged input (``until_damaged``): a bag chunk or message that cannot be read, or an image that cannot be decoded
(a truncated JPEG included), ends a source's frames there; the runs keep the frames before it and report why.

Ground truth: a folder's ``frame-*.pose.txt``; a bag's ``/gt`` topic (``base_link`` in the world) moved to the
colour camera with ``/tf_static``; or a file in the OpenLORIS result format (``--gt FILE``), moved to the camera
with the source's static transforms when it is in another frame.
"""
from __future__ import annotations

import logging
import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rapnet_loc.errors import (BagError, ConfigError, DatasetError, ImageFormatError, RapnetLocError, TopicError,
                               TrajectoryFormatError)
from rapnet_loc.geometry import find_chain
from rapnet_loc.io.openloris import OpenLORISBag
from rapnet_loc.io.sevenscenes import SevenScenesFolder
from rapnet_loc.io.trajectory import read_openloris
from rapnet_loc.io.types import CameraInfo, RGBDFrame

LOG = logging.getLogger(__name__)

BASE_FRAME = 'base_link'
OPENLORIS_CAMERA_FRAME = 'd400_color'
FrameRange = tuple[float | None, float | None]


@dataclass
class InputEnd:
    """Why a source's frames ended early (``until_damaged``): ``error``, None while they have not."""

    error: RapnetLocError | None = None

    @property
    def reason(self) -> str | None:
        """The error's message, or None."""
        return None if self.error is None else str(self.error)


def until_damaged(frames: Iterable[RGBDFrame], end: InputEnd) -> Iterator[RGBDFrame]:
    """The frames of ``frames`` up to the first that cannot be read (a damaged bag chunk or message, an image that
    cannot be decoded: ``BagError``, ``ImageFormatError``), which ends them, logged and kept in ``end.error``."""
    try:
        yield from frames
    except (BagError, ImageFormatError) as exc:
        LOG.warning('input ends at a damaged frame: %s', exc)
        end.error = exc


def parse_frame_range(text: str | None) -> FrameRange:
    """``'FIRST:LAST'`` (either side optional; non-negative numbers, ints where written without a point) ->
    ``(first, last)``; None -> ``(None, None)``."""
    if text is None:
        return None, None
    match = re.fullmatch(r'\s*(\d*\.?\d*)\s*:\s*(\d*\.?\d*)\s*', text)
    if not match or '.' in match.groups():
        raise ConfigError(f'--frames must be FIRST:LAST with non-negative numbers (either may be empty), got {text!r}')
    first, last = ((float(g) if '.' in g else int(g)) if g else None for g in match.groups())
    if first is not None and last is not None and last < first:
        raise ConfigError(f'--frames range ends before it starts: {text!r}')
    return first, last


class RGBDSource(ABC):
    """Frames, camera models and ground truth of one recording; a context manager that closes it.

    Attributes:
        path: the bag or folder.
        camera: the colour camera.
        depth_camera: intrinsics of depth images not registered to colour (7-Scenes), None when aligned.
        total: frame count for progress bars (None when unknown).
        seq: its sequence number within a scene (OpenLORIS bags), None when it has none.
    """

    path: Path
    camera: CameraInfo
    depth_camera: CameraInfo | None = None
    total: int | None = None
    seq: int | None = None

    def __enter__(self) -> RGBDSource:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @abstractmethod
    def frames(self) -> Iterator[RGBDFrame]:
        """The frames in the selected range, in order."""

    @abstractmethod
    def static_transforms(self) -> dict[tuple[str, str], np.ndarray] | None:
        """Static transforms ``{(parent, child): T_parent_child (4, 4)}``, or None when the source has none."""

    @abstractmethod
    def _ground_truth(self) -> tuple[np.ndarray, np.ndarray] | None:
        """The source's own ground truth of the colour camera (see ``ground_truth``)."""

    def ground_truth(self, gt_file: Path | None = None) -> tuple[np.ndarray, np.ndarray] | None:
        """Stamps (N,) int64 ns and camera-to-world poses (N, 4, 4) of the colour camera, from ``gt_file`` (OpenLORIS
        result format: the block of the source's ``seq`` when it has one, else the first) when given, else the
        source's own; None when there are none. Poses with NaN or infinite values are left out, with a warning that
        counts them."""
        gt = self._ground_truth() if gt_file is None else self._ground_truth_file(gt_file)
        if gt is None or (finite := np.isfinite(gt[1]).all(axis=(1, 2))).all():
            return gt
        LOG.warning('%d ground-truth pose(s) with NaN or infinite values left out', (~finite).sum())
        return gt[0][finite], gt[1][finite]

    def _ground_truth_file(self, gt_file: Path) -> tuple[np.ndarray, np.ndarray]:
        """The colour camera's poses in ``gt_file`` (see ``ground_truth``)."""
        result = read_openloris(gt_file, remove_repeated=True)
        if not result.sequences:
            raise TrajectoryFormatError(f'ground-truth file {gt_file} has no "seq:" block')
        traj = result.sequences.get(self.seq) or result.sequences[min(result.sequences)]
        frame = result.frame or self.camera_frame
        if frame == self.camera_frame:
            return traj.stamps_ns, traj.matrices
        static = self.static_transforms()
        if static is None:
            raise ConfigError(f'ground truth {gt_file} is in frame {frame!r}, not the camera frame '
                              f'{self.camera_frame!r}, and {self.path} has no static transforms to convert it')
        return traj.stamps_ns, traj.matrices @ find_chain(static, frame, self.camera_frame)

    def odometry(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Wheel odometry: stamps (N,), ``base_link`` poses in the odometry frame (N, 4, 4) and the camera mount
        ``T_base_cam`` (4, 4).

        Raises:
            ConfigError: the source has none.
        """
        raise ConfigError(f'{self.path} has no wheel odometry (/odom): it is not a bag')

    @property
    def camera_frame(self) -> str:
        """The colour camera's frame id (OpenLORIS' ``d400_color`` when the camera info names none)."""
        return self.camera.frame_id or OPENLORIS_CAMERA_FRAME

    def close(self) -> None:
        """Release the source (open files)."""


class FrameFolderSource(RGBDSource):
    """A folder in the 7-Scenes layout (``rapnet_loc.io.sevenscenes``): frames ``first``..``last`` by file number."""

    def __init__(self, path: Path, first: int | None = None, last: int | None = None):
        if any(isinstance(v, float) for v in (first, last)):
            raise ConfigError(f'the frame range of a frame folder takes frame numbers, got {first}:{last}')
        self.path = Path(path)
        self.folder = SevenScenesFolder(path, first, last)
        self.camera = self.folder.camera_info()
        self.depth_camera = self.folder.depth_camera_info()
        self.total = len(self.folder)

    def frames(self) -> Iterator[RGBDFrame]:
        yield from self.folder

    def static_transforms(self) -> None:
        return None

    def _ground_truth(self) -> tuple[np.ndarray, np.ndarray]:
        return self.folder.poses()


class BagSource(RGBDSource):
    """An OpenLORIS-style bag: frames from ``first`` to ``last`` seconds after its start.

    Attributes:
        scene, seq: OpenLORIS scene name and sequence number guessed from the bag name (``office1-2.bag`` ->
            ``office``, 2), or None and 1.
    """

    def __init__(self, path: Path, first: float | None = None, last: float | None = None):
        self.path, self.first, self.last = Path(path), first, last
        self.bag = OpenLORISBag(path)
        try:
            self.camera = self.bag.camera_info()
        except BaseException:
            self.bag.close()
            raise
        color = self.bag.bag.topics.get(self.bag.topics.color)
        self.total = None if color is None or first is not None or last is not None else color.count
        self.scene, self.seq = None, 1
        if match := re.match(r'([a-z]+)\d*-(\d+)', self.path.name):
            self.scene, self.seq = match.group(1), int(match.group(2))

    def frames(self) -> Iterator[RGBDFrame]:
        yield from self.bag.frames_in_range(self.first, self.last)

    def static_transforms(self) -> dict[tuple[str, str], np.ndarray] | None:
        """The bag's ``/tf_static`` transforms, or None without that topic."""
        try:
            return self.bag.static_transforms()
        except TopicError:
            return None

    def _ground_truth(self) -> tuple[np.ndarray, np.ndarray] | None:
        try:
            stamps, poses = self.bag.ground_truth()
        except TopicError:
            return None
        static = self.static_transforms()
        if static is None or len(stamps) == 0:
            return None
        return stamps, poses @ find_chain(static, BASE_FRAME, self.camera_frame)

    def odometry(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The ``/odom`` topic, with the camera mount from ``/tf_static``; ConfigError without ``/tf_static`` or
        with fewer than two odometry messages."""
        static = self.static_transforms()
        if static is None:
            raise ConfigError(f'odometry: {self.path} has no /tf_static to place the camera on the base')
        stamps, poses = self.bag.odometry()
        if len(stamps) < 2:
            raise ConfigError(f'odometry: fewer than two odometry messages in {self.path}')
        return stamps, poses, find_chain(static, BASE_FRAME, self.camera_frame)

    def close(self) -> None:
        self.bag.close()


def is_frame_folder(path: Path) -> bool:
    """Whether ``path`` is a folder of ``frame-*.color.*`` images (else it is taken for a bag)."""
    return path.is_dir() and any(path.glob('frame-*.color.*'))


def open_source(path: str | Path, frames: str | FrameRange | None = None) -> RGBDSource:
    """The bag or frame folder at ``path``, restricted to ``frames`` (``'FIRST:LAST'`` or ``(first, last)``: file
    numbers of a folder, seconds from the start of a bag; None: all).

    Raises:
        RapnetLocError: the path cannot be read as either (the message names the problem).
    """
    path = Path(path)
    first, last = parse_frame_range(frames) if frames is None or isinstance(frames, str) else frames
    if is_frame_folder(path):
        return FrameFolderSource(path, first, last)
    if path.is_dir() and not (path / 'metadata.yaml').is_file():
        raise DatasetError(f'{path} is neither a frame folder (it holds no frame-NNNNNN.color.png or .jpg images) '
                           f'nor a ROS 2 bag directory (no metadata.yaml)')
    return BagSource(path, first, last)
