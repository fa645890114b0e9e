"""Posed, labelled RGB-D frames of synthetic bags, and their export to a 7-Scenes-style training folder.

``bag_frames(bag)`` reads a bag written by ``rapnet_loc.synth.generate``: colour, aligned depth, the ``/synth/labels``
map and the colour camera's ground-truth pose of every frame. ``write_training_folder`` writes frames of several
bags into one folder that ``rapnet_loc.rapnet.data.load_frames`` reads: ``frame-XXXXXX.color.png``,
``frame-XXXXXX.depth.png`` (uint16 mm; 0 on dynamic objects, so that correspondences use only the static scene),
``frame-XXXXXX.label.png``, ``frame-XXXXXX.pose.txt`` (camera-to-world) and ``color-intrinsics.txt`` /
``camera-intrinsics.txt`` (the same K: depth is aligned to colour). Frames are numbered on across the bags; the
bags of one ``generate`` call share a world frame, so places can be compared across sequences.

``rapnet-loc synth --out OUT/bags --frames-folder OUT --scene home --sequences 2 --frames 150 --width 640
--height 480 --seed 1 --people 3 --compression none`` generates the bags and writes the folder.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from rapnet_loc.io.bag import stamp_ns
from rapnet_loc.io.images import decode_image
from rapnet_loc.io.openloris import OpenLORISBag
from rapnet_loc.io.sevenscenes import COLOR_INTRINSICS, DEPTH_INTRINSICS
from rapnet_loc.io.types import RGBDFrame
from rapnet_loc.synth.generate import depth_to_mm
from rapnet_loc.synth.world import DYNAMIC

LABELS_TOPIC = '/synth/labels'
CAMERA_FRAME = 'd400_color'


@dataclass
class LabelledFrame:
    """``frame`` (colour (H, W, 3) uint8, depth (H, W) float32 m), ``labels`` (H, W) uint8 (bit 0x80: dynamic
    object) and the colour camera's pose ``T_wc`` (4, 4) camera-to-world."""

    frame: RGBDFrame
    labels: np.ndarray
    T_wc: np.ndarray


def bag_frames(path: str | Path) -> tuple[np.ndarray, Iterator[LabelledFrame]]:
    """The colour intrinsics K (3, 3) of a synthetic bag and an iterator over its ``LabelledFrame``s."""
    bag = OpenLORISBag(path)
    K = bag.camera_info().K
    T_base_cam = bag.static_transforms()[('base_link', CAMERA_FRAME)]
    stamps, T_world_base = bag.ground_truth()
    poses = {int(s): T @ T_base_cam for s, T in zip(stamps, T_world_base)}
    labels = {stamp_ns(m.header.stamp): decode_image(m.msg) for m in bag.bag.messages([LABELS_TOPIC])}

    def frames() -> Iterator[LabelledFrame]:
        with bag:
            for frame in bag.rgbd_frames():
                yield LabelledFrame(frame, labels[frame.stamp_ns], poses[frame.stamp_ns])
    return K, frames()


def write_training_folder(bags: list[Path], out: str | Path, progress: bool = True) -> int:
    """Write the frames of ``bags`` (one world frame) into the training folder ``out``; returns the frame count."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    n = 0
    for bag in bags:
        K, frames = bag_frames(bag)
        for item in tqdm(frames, desc=f'frames {Path(bag).name}', disable=not progress):
            stem = out / f'frame-{n:06d}'
            depth = np.where(item.labels & DYNAMIC, 0.0, item.frame.depth)
            cv2.imwrite(f'{stem}.color.png', item.frame.color[:, :, ::-1])
            cv2.imwrite(f'{stem}.depth.png', depth_to_mm(depth))
            cv2.imwrite(f'{stem}.label.png', item.labels)
            np.savetxt(f'{stem}.pose.txt', item.T_wc)
            n += 1
    for name in (COLOR_INTRINSICS, DEPTH_INTRINSICS):
        np.savetxt(out / name, K)
    return n
