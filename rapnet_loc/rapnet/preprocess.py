"""Network input: image checks, resizing to a maximum edge, and the "torch" / "caffe" normalisations."""
from __future__ import annotations

import cv2
import numpy as np

from rapnet_loc.errors import ImageFormatError

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)
CAFFE_MEAN_BGR = np.array([103.939, 116.779, 123.68], np.float32)
MIN_SIDE = 16            # smaller images (after resizing) give no keypoints


def to_rgb(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB of an (H, W), (H, W, 1), (H, W, 3) RGB or (H, W, 4) RGBA uint8 image.

    Raises:
        ImageFormatError: not uint8 (float images, NaNs included) or not one of these shapes.
    """
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise ImageFormatError(f'RaP-Net needs a uint8 image, got {image.dtype}')
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or image.shape[2] not in (1, 3, 4):
        raise ImageFormatError(f'RaP-Net needs an (H, W) or (H, W, 1|3|4) image, got shape {image.shape}')
    return np.ascontiguousarray(np.repeat(image, 3, axis=2) if image.shape[2] == 1 else image[:, :, :3])


def resize_max_edge(image: np.ndarray, max_edge: int) -> np.ndarray:
    """``image`` shrunk (area interpolation) so that its longer edge is at most ``max_edge``; never enlarged."""
    h, w = image.shape[:2]
    if max(h, w) <= max_edge:
        return image
    f = max_edge / max(h, w)
    return cv2.resize(image, (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA)


def normalize(rgb: np.ndarray, preprocessing: str) -> np.ndarray:
    """(1, 3, H, W) float32 network input of an (H, W, 3) uint8 RGB image.

    ``'torch'``: RGB / 255, minus the ImageNet mean, divided by its std (RaP-Net). ``'caffe'``: BGR minus the
    Caffe VGG mean pixel, unscaled (D2-Net).
    """
    x = rgb.astype(np.float32)
    if preprocessing == 'torch':
        x = (x / 255.0 - IMAGENET_MEAN) / IMAGENET_STD
    elif preprocessing == 'caffe':
        x = x[:, :, ::-1] - CAFFE_MEAN_BGR
    else:
        raise ValueError(f'unknown preprocessing {preprocessing!r}; expected torch or caffe')
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None], dtype=np.float32)


def has_texture(rgb: np.ndarray) -> bool:
    """False for images without keypoints to find: a side under ``MIN_SIDE`` px, or a single colour."""
    return min(rgb.shape[:2]) >= MIN_SIDE and bool((rgb != rgb.reshape(-1, 3)[0]).any())
