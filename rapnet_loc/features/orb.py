"""OpenCV ORB with an ORB-SLAM-like spatial distribution of keypoints.

ORB-SLAM detects FAST corners per cell with a high threshold and retries weak cells with a low one, then keeps the
strongest corner of each region. Here OpenCV's ORB detects ``oversample * max_keypoints`` corners with the low FAST
threshold, and the selection is done in bulk: within each (pyramid level, grid cell) the corners are ranked by
response, and keypoints are taken rank by rank (every cell's best first, then every cell's second best, ...), the
stronger first within a rank. Textured cells therefore cannot starve weak ones, and descriptors are computed only
for the kept keypoints.
"""
from __future__ import annotations

import cv2
import numpy as np

from rapnet_loc.errors import ConfigError
from rapnet_loc.features.base import FeatureExtractor, Features, rap_scores, register, to_gray
from rapnet_loc.registry import require_number

DESCRIPTOR_BYTES = 32
SINGLE_LEVEL_FACTOR = 2.0    # handed to OpenCV when there is one level (unused by it)


@register('orb')
class ORB(FeatureExtractor):
    """ORB keypoints (rBRIEF, 32-byte binary descriptors, Hamming distance).

    Options:
        max_keypoints: keypoints kept per image.
        n_levels, scale_factor: image pyramid; ``scale_factor`` must exceed 1 unless ``n_levels`` is 1 (no
            pyramid, as RaP-Net: then 1 is what the front end is told).
        fast_threshold: FAST threshold of detection (the low, ORB-SLAM ``minThFAST``-like value).
        edge_threshold: border in pixels (at each level) without keypoints.
        grid_cell: side in pixels (at each level) of the cells that the selection balances over; 0 disables the
            balancing (OpenCV's own best-response selection).
        oversample: corners detected per kept keypoint before the selection.
    """

    default_conf = {'max_keypoints': 1000, 'n_levels': 8, 'scale_factor': 1.2, 'fast_threshold': 10,
                    'edge_threshold': 19, 'grid_cell': 40, 'oversample': 2.0}

    def __init__(self, conf: dict | None = None):
        super().__init__(conf)
        c = self.conf
        for key, low in (('max_keypoints', 0), ('fast_threshold', 1), ('edge_threshold', 0), ('grid_cell', 0)):
            require_number('ORB', key, c[key], low, integer=True)
        require_number('ORB', 'oversample', c['oversample'], 1)
        if int(c['n_levels']) < 1 or (int(c['n_levels']) > 1 and float(c['scale_factor']) <= 1):
            raise ConfigError(f'ORB needs n_levels >= 1 and, with several levels, scale_factor > 1; got n_levels '
                              f'{c["n_levels"]} and scale_factor {c["scale_factor"]}')
        detect_n = int(c['max_keypoints'] * (c['oversample'] if c['grid_cell'] > 0 else 1.0))
        # one level never scales, but OpenCV 5 refuses a factor of 1 even then
        pyramid = float(c['scale_factor']) if int(c['n_levels']) > 1 else SINGLE_LEVEL_FACTOR
        self._orb = cv2.ORB_create(nfeatures=max(detect_n, 1), scaleFactor=pyramid,
                                   nlevels=int(c['n_levels']), edgeThreshold=int(c['edge_threshold']),
                                   patchSize=31, fastThreshold=int(c['fast_threshold']))

    def _empty(self) -> Features:
        return Features.empty(DESCRIPTOR_BYTES, 'hamming', self.conf['scale_factor'], self.conf['n_levels'])

    def extract(self, image: np.ndarray) -> Features:
        gray = to_gray(image)
        if min(gray.shape) <= 2 * self.conf['edge_threshold'] + 1 or not gray.any():
            return self._empty()
        keypoints = self._orb.detect(gray, None)
        region = self.region_weights(gray, keypoints) if keypoints else None
        if region is not None:     # rank by RaP-Net's score; class_id carries each candidate's R through compute
            scores = rap_scores(np.array([k.response for k in keypoints], np.float32), region)
            for n, (k, score) in enumerate(zip(keypoints, scores)):
                k.response, k.class_id = float(score), n
        if self.conf['grid_cell'] > 0 and len(keypoints) > self.conf['max_keypoints']:
            keypoints = [keypoints[i] for i in self._select(keypoints)]
        keypoints, descriptors = self._orb.compute(gray, keypoints)
        if descriptors is None or not keypoints:
            return self._empty()
        return Features(cv2.KeyPoint_convert(keypoints), np.array([k.response for k in keypoints]), descriptors,
                        'hamming', np.array([k.octave for k in keypoints]), self.conf['scale_factor'],
                        self.conf['n_levels'],
                        None if region is None else region[[k.class_id for k in keypoints]])

    def region_weights(self, gray: np.ndarray, keypoints: list[cv2.KeyPoint]) -> np.ndarray | None:
        """(N,) region weight R of each candidate corner, which the selection then ranks by response x exp(R -
        mean R); None (plain ORB) ranks by response."""
        return None

    def _select(self, keypoints: list[cv2.KeyPoint]) -> np.ndarray:
        """Indices of ``max_keypoints`` of ``keypoints`` spread over (level, grid cell), see the module doc."""
        xy = cv2.KeyPoint_convert(keypoints)
        response = np.array([k.response for k in keypoints], dtype=np.float32)
        level = np.array([k.octave for k in keypoints], dtype=np.int64)
        cell_size = self.conf['grid_cell'] * np.power(self.conf['scale_factor'], level)
        cells = np.floor(xy / cell_size[:, None]).astype(np.int64)
        group = (level * 4096 + cells[:, 1]) * 4096 + cells[:, 0]
        order = np.lexsort((-response, group))
        sorted_group = group[order]
        starts = np.r_[0, np.flatnonzero(np.diff(sorted_group)) + 1]
        rank = np.empty(len(order), np.int64)
        rank[order] = np.arange(len(order)) - np.repeat(starts, np.diff(np.r_[starts, len(order)]))
        return np.lexsort((-response, rank))[:self.conf['max_keypoints']]
