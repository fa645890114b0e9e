"""``patchnetvlad``: Patch-NetVLAD (Hausler et al., CVPR 2021): a NetVLAD shortlist re-ranked by patch matching.

The keyframes are encoded as by ``netvlad`` (same backbones, fitting and checkpoints) plus, for each patch size,
the whitened IntegralVLAD descriptors of every patch (float16). A query takes the ``shortlist`` keyframes nearest
by global vector, matches its patches with each one's by mutual nearest neighbours, scores the matches spatially
(``rapnet_loc.vpr.patch_matching``), fuses the per-size scores over the shortlist with the preset's weights (the
authors' normalisation) and ranks the shortlist by that score; the other keyframes follow in the global order, with
score 0 (not re-ranked).

Presets: the authors' three configurations, and ``storage-ransac``, ours (any setting can be given to override a
preset's):

==============  ===========  ===========  ======  =======  ==============  =========
preset          patch sizes  weights      stride  num_pcs  scoring         shortlist
==============  ===========  ===========  ======  =======  ==============  =========
performance     2, 5, 8      .45 .15 .4   1       4096     RANSAC          100
speed           5            1            1       512      rapid spatial   100
storage         5            1            1       128      rapid spatial   100
storage-ransac  5            1            1       128      RANSAC          100
==============  ===========  ===========  ======  =======  ==============  =========

The default is ``storage-ransac`` with 64 clusters: ``storage``'s compact descriptors scored as ``performance``
scores its matches. It had the best mean recall@1 over the three tuning folds of ``benchmarks/bench_vpr.py``
(frames 0-349 of the 7-Scenes dev set) among the candidates of BENCHMARKS.md, session 18 (``storage`` and
``speed`` with rapid spatial scoring among them): on a map of a few dozen keyframes of one room the global
vector ranks the neighbourhood, not the nearest view, and the homography test of the patch matches separates the
two far better than the displacement coherence of rapid spatial scoring. ``performance`` holds about 23 MB of
patch descriptors per keyframe (2826 patches of 4096 float16), ``speed`` 0.96 MB, ``storage`` and
``storage-ransac`` 0.24 MB.
"""
from __future__ import annotations

import numpy as np

from rapnet_loc.errors import ConfigError, MapFormatError
from rapnet_loc.vpr.backbones import IMAGE_SIZE, STRIDE
from rapnet_loc.vpr.base import Ranking, register, require
from rapnet_loc.vpr.netvlad import NetVLADRecognizer
from rapnet_loc.vpr.netvlad_model import patch_grid
from rapnet_loc.vpr.patch_matching import (RANSAC_TOLERANCE, fuse, grid_indices, mutual_nearest, patch_centres,
                                           ransac_score, rapid_spatial_score)

PRESETS = {
    'performance': {'patch_sizes': [2, 5, 8], 'patch_weights': [0.45, 0.15, 0.4], 'stride': 1, 'num_pcs': 4096,
                    'scoring': 'ransac', 'shortlist': 100},
    'speed': {'patch_sizes': [5], 'patch_weights': [1.0], 'stride': 1, 'num_pcs': 512, 'scoring': 'rapid',
              'shortlist': 100},
    'storage': {'patch_sizes': [5], 'patch_weights': [1.0], 'stride': 1, 'num_pcs': 128, 'scoring': 'rapid',
                'shortlist': 100},
    'storage-ransac': {'patch_sizes': [5], 'patch_weights': [1.0], 'stride': 1, 'num_pcs': 128, 'scoring': 'ransac',
                       'shortlist': 100},
}
SCORINGS = ('ransac', 'rapid')


@register('patchnetvlad')
class PatchNetVLADRecognizer(NetVLADRecognizer):
    """Patch-NetVLAD place recognizer (see the module doc); ``None`` options take the preset's value."""

    default_conf = {**NetVLADRecognizer.default_conf, 'clusters': 64, 'preset': 'storage-ransac', 'patch_sizes': None,
                    'patch_weights': None, 'stride': None, 'num_pcs': None, 'scoring': None, 'shortlist': None}

    def __init__(self, conf: dict | None = None):
        conf = dict(conf or {})
        preset = conf.get('preset', self.default_conf['preset'])
        if preset not in PRESETS:
            raise ConfigError(f'unknown Patch-NetVLAD preset {preset!r}; available: {", ".join(PRESETS)}')
        conf.update({key: value for key, value in PRESETS[preset].items() if conf.get(key) is None})
        super().__init__(conf)
        self.patch_sizes = tuple(int(p) for p in self.conf['patch_sizes'])
        self.patch_stride = int(self.conf['stride'])
        self.weights = [float(w) for w in self.conf['patch_weights']]
        if len(self.weights) != len(self.patch_sizes) or not self.patch_sizes:
            raise ConfigError(f'Patch-NetVLAD needs one weight per patch size: sizes {list(self.patch_sizes)}, '
                              f'weights {self.weights}')
        if self.conf['scoring'] not in SCORINGS:
            raise ConfigError(f'unknown Patch-NetVLAD scoring {self.conf["scoring"]!r}; available: '
                              f'{", ".join(SCORINGS)}')
        rows, cols = IMAGE_SIZE[1] // STRIDE, IMAGE_SIZE[0] // STRIDE
        self.grids = [patch_grid(rows, cols, size, self.patch_stride) for size in self.patch_sizes]
        self._patches: dict[int, list[np.ndarray]] = {}

    def remove(self, kf_id: int) -> None:
        self._patches.pop(kf_id, None)
        super().remove(kf_id)

    def _index_encoded(self, kf_id: int, vector: np.ndarray, patches: list[np.ndarray]) -> None:
        super()._index_encoded(kf_id, vector, patches)
        self._patches[kf_id] = patches

    def _rank(self, vector: np.ndarray, patches: list[np.ndarray], k: int | None) -> Ranking:
        ranking = super()._rank(vector, patches, k if k is None else max(k, self.conf['shortlist']))
        head, tail = ranking.ids[:self.conf['shortlist']], ranking.ids[self.conf['shortlist']:]
        scores = fuse(np.array([self.patch_scores(patches, self._patches[int(kf_id)]) for kf_id in head],
                               np.float64).reshape(len(head), len(self.patch_sizes)), self.weights)
        order = np.argsort(-scores, kind='stable')
        ids, scores = np.concatenate([head[order], tail]), np.concatenate([scores[order], np.zeros(len(tail))])
        return Ranking(ids[:k], scores[:k])

    def patch_scores(self, query: list[np.ndarray], other: list[np.ndarray]) -> list[float]:
        """Spatial score per patch size of two images' patch descriptors (one (N, P) array per patch size)."""
        scores = []
        for q, o, size, (rows, cols) in zip(query, other, self.patch_sizes, self.grids):
            qi, oi = mutual_nearest(q, o)
            if self.conf['scoring'] == 'ransac':
                centres = patch_centres(rows, cols, size, self.patch_stride, STRIDE)
                scores.append(ransac_score(centres[qi], centres[oi], len(q),
                                           RANSAC_TOLERANCE * self.patch_stride * STRIDE))
            else:
                ij = grid_indices(rows, cols)
                scores.append(rapid_spatial_score(ij[qi], ij[oi], len(q), np.array([cols - 1, rows - 1])))
        return scores

    def state(self) -> dict[str, np.ndarray]:
        state = super().state()
        for s, size in enumerate(self.patch_sizes):
            state[f'patches_{size}'] = np.stack([self._patches[int(i)][s] for i in state['ids']]) if len(
                state['ids']) else np.zeros((0, 0, 0), np.float16)
        return state

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        names = tuple(f'patches_{size}' for size in self.patch_sizes)
        require(state, names, self.name)
        super().load_state(state)
        for name, (rows, cols) in zip(names, self.grids):
            if len(self._ids) and state[name].shape != (len(self._ids), rows * cols, self._vectors.shape[1]):
                raise MapFormatError(f'the saved state of place recognizer {self.name!r} has {name} of shape '
                                     f'{state[name].shape}, expected {(len(self._ids), rows * cols)} patches of '
                                     f'{self._vectors.shape[1]} dimensions')
        self._patches = {kf_id: [state[name][row] for name in names] for row, kf_id in enumerate(self._ids)}
