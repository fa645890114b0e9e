"""Local features and the extractor registry (hloc-style: one module per extractor, registered by name).

Adding an extractor is one file ``rapnet_loc/features/<name>.py`` that subclasses ``FeatureExtractor`` and decorates
it with ``@register('<name>')``; ``create_extractor('<name>')`` imports that module on first use.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import cv2
import numpy as np

from rapnet_loc.errors import ImageFormatError
from rapnet_loc.registry import Configurable, Registry

DISTANCES = ('hamming', 'l2')


@dataclass
class Features:
    """Keypoints of one image with their descriptors.

    Attributes:
        keypoints: (N, 2) float32 pixel coordinates ``(x, y)`` in the full-resolution image.
        scores: (N,) float32 detector responses (larger is stronger).
        descriptors: (N, B) uint8 packed binary descriptors (``distance='hamming'``) or (N, D) float32
            (``distance='l2'``).
        distance: descriptor metric, ``'hamming'`` or ``'l2'``.
        levels: (N,) int16 pyramid level of each keypoint (0 = full resolution); all 0 when the extractor has no
            pyramid. A keypoint of level ``l`` has scale ``scale_factor ** l``.
        scale_factor: scale ratio between consecutive pyramid levels (1.0 without a pyramid).
        n_levels: number of pyramid levels of the extractor.
        weights: (N,) float32 region weight of each keypoint (RaP-Net's R sampled at it); all 1 for extractors
            without one.
    """

    keypoints: np.ndarray
    scores: np.ndarray
    descriptors: np.ndarray
    distance: str = 'hamming'
    levels: np.ndarray | None = None
    scale_factor: float = 1.0
    n_levels: int = 1
    weights: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.distance not in DISTANCES:
            raise ValueError(f'unknown descriptor distance {self.distance!r}; expected one of {DISTANCES}')
        self.keypoints = np.asarray(self.keypoints, dtype=np.float32).reshape(-1, 2)
        n = len(self.keypoints)
        self.scores = np.asarray(self.scores, dtype=np.float32).reshape(n)
        dtype = np.uint8 if self.distance == 'hamming' else np.float32
        self.descriptors = np.ascontiguousarray(self.descriptors, dtype=dtype)
        if self.descriptors.ndim != 2 or len(self.descriptors) != n:
            raise ValueError(f'descriptors of {n} keypoints must have shape ({n}, D), got {self.descriptors.shape}')
        self.levels = (np.zeros(n, np.int16) if self.levels is None
                       else np.asarray(self.levels, dtype=np.int16).reshape(n))
        self.weights = (np.ones(n, np.float32) if self.weights is None
                        else np.asarray(self.weights, dtype=np.float32).reshape(n))

    def __len__(self) -> int:
        return len(self.keypoints)

    @classmethod
    def empty(cls, descriptor_size: int, distance: str = 'hamming', scale_factor: float = 1.0,
              n_levels: int = 1) -> Features:
        """No keypoints; descriptors of shape (0, descriptor_size)."""
        dtype = np.uint8 if distance == 'hamming' else np.float32
        return cls(np.zeros((0, 2)), np.zeros(0), np.zeros((0, descriptor_size), dtype), distance,
                   scale_factor=scale_factor, n_levels=n_levels)

    @property
    def level_scales(self) -> np.ndarray:
        """(N,) float64 scale ``scale_factor ** level`` of each keypoint."""
        return np.power(float(self.scale_factor), self.levels.astype(np.float64))


def to_gray(image: np.ndarray) -> np.ndarray:
    """(H, W) uint8 grey image of an (H, W), (H, W, 1), (H, W, 3) RGB or (H, W, 4) RGBA uint8 image."""
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise ImageFormatError(f'feature extraction needs a uint8 image, got {image.dtype}')
    if image.ndim == 3 and image.shape[2] in (1, 3, 4):
        if image.shape[2] == 1 or image.size == 0:
            return np.ascontiguousarray(image[:, :, 0])
        code = cv2.COLOR_RGB2GRAY if image.shape[2] == 3 else cv2.COLOR_RGBA2GRAY
        return cv2.cvtColor(np.ascontiguousarray(image), code)
    if image.ndim == 2:
        return np.ascontiguousarray(image)
    raise ImageFormatError(f'feature extraction needs an (H, W) or (H, W, 1|3|4) image, got shape {image.shape}')


def rap_scores(p: np.ndarray, r: np.ndarray | None) -> np.ndarray:
    """Selection scores of candidate keypoints: P / sum(P) * exp(R - mean(R)) (RaP-Net's, over its NMS survivors), or P
    when R is None (P only).

    Args:
        p: (N,) point weights P; r: (N,) region weights R at the same pixels, or None.
    """
    p = np.asarray(p, np.float64)
    if r is None:
        return p
    r = np.asarray(r, np.float64)
    return p / p.sum() * np.exp(r - r.mean())


class FeatureExtractor(Configurable, ABC):
    """Detects keypoints and computes descriptors.

    Subclasses set ``default_conf`` and implement ``extract``; ``self.conf`` is ``default_conf`` updated with the
    ``conf`` given to the constructor.
    """

    kind: ClassVar[str] = 'feature extractor'

    @abstractmethod
    def extract(self, image: np.ndarray) -> Features:
        """Features of an (H, W, 3) uint8 RGB image (grey (H, W) accepted); empty Features when none are found."""


EXTRACTORS: Registry[FeatureExtractor] = Registry('feature extractor', __package__, frozenset({'base', 'matching', 'xfeat_net'}))
register = EXTRACTORS.register
available_extractors = EXTRACTORS.available
extractor_class = EXTRACTORS.get


def create_extractor(name: str, conf: dict | None = None) -> FeatureExtractor:
    """The extractor registered as ``name``, configured with ``conf`` (merged over its ``default_conf``).

    Raises:
        ConfigError: unknown name (the message lists the registered ones) or unknown option.
    """
    return EXTRACTORS.create(name, conf)
