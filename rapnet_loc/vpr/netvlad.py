"""``netvlad``: NetVLAD global descriptors (Arandjelovic et al., CVPR 2016) with PCA whitening, fitted on the map.

``describe`` runs the backbone (``rapnet_loc.vpr.backbones``) on the colour image and returns its (C, 30, 40)
float16 feature map; the NetVLAD clusters and the whitening (``rapnet_loc.vpr.netvlad_model``) are fitted on the
robot's own keyframes, since no pretrained ones can be obtained for these backbones:

- while the recognizer holds fewer than ``fit_keyframes`` keyframes it keeps their feature maps, and it (re-)fits
  k-means clusters over ``kmeans_samples`` of their local descriptors and the whitening over ``wpca_samples`` of
  their VLAD vectors when a query or ``fit`` finds none fitted or twice as many keyframes as at the last fit
  (``build-map`` and ``replay --map-out`` fit at the end); every held keyframe is then re-encoded;
- when ``fit_keyframes`` is reached it fits a last time and drops the maps: later keyframes are encoded as they
  come, and a recognizer restored from a map file is fitted for good.

The whitening is fitted on the keyframes' global VLAD vectors together with their 5 x 5 patch vectors
(IntegralVLAD), which live in the same space: a map has far fewer images than PCA dimensions, and the authors fit
theirs on thousands of images. With ``checkpoint`` (an official Patch-NetVLAD file, backbone ``vgg16``; or one
written by ``rapnet-loc train-netvlad`` for the configured backbone and clusters, see ``rapnet_loc.vpr.train``), its
clusters and whitening (and an official file's encoder) are used and nothing is fitted. Keyframes are ranked by the
cosine of their whitened vectors (stored as float16), with faiss where it is installed.

The defaults, 16 clusters and 256 whitened dimensions, are the best of the tuning split of
``benchmarks/bench_vpr.py`` (BENCHMARKS.md): whitening all 1024 dimensions of a 16-cluster XFeat VLAD vector
fitted on a few dozen keyframes blows up its weakest directions (recall@1 0.55 there, against 0.84 with 256).
"""
from __future__ import annotations

import logging

import numpy as np
import torch

from rapnet_loc.errors import ConfigError, ImageFormatError, MapFormatError
from rapnet_loc.rapnet.preprocess import to_rgb
from rapnet_loc.vpr.backbones import STRIDE, create_backbone
from rapnet_loc.vpr.base import GlobalDescriptorRecognizer, Ranking, View, register, require
from rapnet_loc.vpr.netvlad_model import (PatchNetVLAD, fit_wpca, global_vlad, load_checkpoint, open_checkpoint,
                                          patch_vlad, whiten)

LOG = logging.getLogger(__name__)

WPCA_PATCH_SIZE = 5         # patches whose vectors join the global ones in the whitening sample


@register('netvlad')
class NetVLADRecognizer(GlobalDescriptorRecognizer):
    """NetVLAD place recognizer (see the module doc). ``patch_sizes`` are the IntegralVLAD patch sizes the
    recognizer encodes (none here; ``patchnetvlad`` adds them)."""

    needs_image = True
    default_conf = {'backbone': 'xfeat', 'clusters': 16, 'num_pcs': 256, 'checkpoint': '', 'fit_keyframes': 200,
                    'kmeans_samples': 50000, 'wpca_samples': 8192, 'seed': 0}
    patch_sizes: tuple[int, ...] = ()
    patch_stride: int = 1

    def __init__(self, conf: dict | None = None):
        super().__init__(conf)
        self.backbone = create_backbone(self.conf['backbone'])
        self.model = PatchNetVLAD(self.backbone.encoder, self.backbone.channels, int(self.conf['clusters']),
                                  int(self.conf['num_pcs'])).eval()
        self.fitted = self.frozen = self._changed = False
        self._maps: dict[int, np.ndarray] = {}
        self._fitted_on = 0
        if self.conf['checkpoint']:
            self._load_checkpoint(str(self.conf['checkpoint']))

    def _load_checkpoint(self, path: str) -> None:
        """Load an official file (strictly, encoder included) or a trained one (it names its backbone and clusters;
        an encoder only where it holds one)."""
        backbone, clusters = self.conf['backbone'], int(self.conf['clusters'])
        official = 'official Patch-NetVLAD checkpoints hold a VGG16 encoder; set backbone: vgg16'
        try:
            checkpoint = open_checkpoint(path)
        except ConfigError as exc:
            if backbone == 'vgg16':
                raise
            raise ConfigError(f'{exc} (backbone {backbone!r} takes files of rapnet-loc train-netvlad; {official} to '
                              f'use one of those)') from None
        trained = checkpoint.get('backbone')
        if trained is None and backbone != 'vgg16':
            raise ConfigError(f'{path}: {official} (the configuration has {backbone!r})')
        if trained is not None and (trained, checkpoint.get('clusters')) != (backbone, clusters):
            raise ConfigError(f'{path} was trained for backbone {trained!r} with {checkpoint.get("clusters")} '
                              f'clusters; the configuration has backbone {backbone!r} with {clusters} clusters')
        state = checkpoint['state_dict']
        load_checkpoint(self.model, state, path, trained is None or any(key.startswith('encoder.') for key in state))
        self.model.eval()
        self.fitted = self.frozen = True

    @property
    def ids(self) -> list[int]:
        return sorted(set(super().ids) | set(self._maps))

    def describe(self, view: View) -> np.ndarray:
        """(C, 30, 40) float16 backbone map of ``view.image``.

        Raises:
            ImageFormatError: not a uint8 image, or one whose shorter side is under the largest patch.
        """
        rgb = to_rgb(view.image)
        smallest = max((*self.patch_sizes, 1)) * STRIDE
        if min(rgb.shape[:2]) < smallest:
            raise ImageFormatError(f'place recognizer {self.name!r} needs images of at least {smallest} px on each '
                                   f'side (its largest patch), got {rgb.shape[1]}x{rgb.shape[0]}')
        return self.backbone(rgb)[0].numpy().astype(np.float16)

    def add(self, kf_id: int, descriptor: np.ndarray) -> None:
        self.remove(kf_id)
        if not self.frozen:
            self._maps[kf_id] = descriptor
            self._changed = True
            if len(self._maps) >= self.conf['fit_keyframes']:
                self.fit()
                return
        if self.fitted:
            self._index(kf_id, descriptor)

    def remove(self, kf_id: int) -> None:
        if self._maps.pop(kf_id, None) is not None:
            self._changed = True
        super().remove(kf_id)

    def query(self, descriptor: np.ndarray, k: int | None = None) -> Ranking:
        if not self.frozen and self._maps and len(self._maps) >= 2 * self._fitted_on:
            self.fit()
        if not self.fitted:
            return Ranking(np.zeros(0, np.int64), np.zeros(0))
        return self._rank(*self.encode(descriptor), k)

    def _rank(self, vector: np.ndarray, patches: list[np.ndarray], k: int | None) -> Ranking:
        """The ranking for a query's encoding (``encode``)."""
        return super().query(vector, k)

    def encode(self, feature_map: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        """Whitened global vector (P,) and, for each of ``patch_sizes``, patch vectors (N, P) float16 of a
        (C, H, W) backbone map."""
        with torch.inference_mode():
            residuals = self.model.pool.residuals(torch.from_numpy(feature_map.astype(np.float32))[None])
            vector = whiten(self.model.WPCA, global_vlad(residuals))[0].numpy()
            patches = [whiten(self.model.WPCA, patch_vlad(residuals, size, self.patch_stride)).numpy()
                       .astype(np.float16) for size in self.patch_sizes]
        return vector, patches

    def _index(self, kf_id: int, feature_map: np.ndarray) -> None:
        self._index_encoded(kf_id, *self.encode(feature_map))

    def _index_encoded(self, kf_id: int, vector: np.ndarray, patches: list[np.ndarray]) -> None:
        """Index a keyframe's encoding (``encode``)."""
        super().add(kf_id, vector)

    def fit(self) -> None:
        """Fit clusters and whitening on the held keyframes' maps and re-encode them (see the module doc); nothing
        to do when they have not changed since the last fit."""
        if self.frozen or not self._maps or not self._changed:
            return
        rng = np.random.default_rng(self.conf['seed'])
        maps = [torch.from_numpy(m.astype(np.float32)) for m in self._maps.values()]
        self.fit_clusters(maps, rng)
        self.fit_whitening(maps, rng)
        self.fitted, self._fitted_on, self._changed = True, len(self._maps), False
        for kf_id, feature_map in self._maps.items():
            self._index(kf_id, feature_map)
        if len(self._maps) >= self.conf['fit_keyframes']:
            self.frozen, self._maps = True, {}
        LOG.info('place recognizer %r fitted on %d keyframes (%d clusters, %d whitened dimensions)', self.name,
                 self._fitted_on, self.model.pool.clusters, self.model.num_pcs)

    def fit_clusters(self, maps: list[torch.Tensor], rng: np.random.Generator) -> None:
        """Initialise the pool from k-means over the local descriptors of (C, H, W) float32 ``maps``."""
        import faiss
        local = torch.nn.functional.normalize(torch.cat([m.reshape(m.shape[0], -1).T for m in maps]), dim=1)
        local = local.numpy()
        sample = local[rng.permutation(len(local))[:self.conf['kmeans_samples']]]
        clusters = int(self.conf['clusters'])
        if len(sample) < clusters:
            raise ConfigError(f'place recognizer {self.name!r}: {len(sample)} local descriptors cannot make '
                              f'{clusters} clusters')
        kmeans = faiss.Kmeans(sample.shape[1], clusters, niter=50, seed=int(self.conf['seed']), verbose=False)
        kmeans.train(np.ascontiguousarray(sample, np.float32))
        self.model.pool.initialise(kmeans.centroids, sample)

    def fit_whitening(self, maps: list[torch.Tensor], rng: np.random.Generator) -> None:
        """Fit the whitening on the global and 5 x 5 patch VLAD vectors of (C, H, W) float32 ``maps``."""
        vectors, patches = [], []
        with torch.inference_mode():
            for m in maps:
                residuals = self.model.pool.residuals(m[None])
                vectors.append(global_vlad(residuals))
                patches.append(patch_vlad(residuals, WPCA_PATCH_SIZE, 1))
        patches = torch.cat(patches).numpy()
        room = max(0, self.conf['wpca_samples'] - len(vectors))
        samples = np.concatenate([torch.cat(vectors).numpy(), patches[rng.permutation(len(patches))[:room]]])
        with torch.random.fork_rng():
            torch.manual_seed(int(self.conf['seed']))       # fit_wpca's randomized SVD
            self.model.set_wpca(*fit_wpca(samples, int(self.conf['num_pcs'])))

    def state(self) -> dict[str, np.ndarray]:
        self.fit()
        conv = self.model.WPCA[0]
        indexed = super().state()
        return {**indexed, 'vectors': indexed['vectors'].astype(np.float16),
                'fitted': np.array(self.fitted), 'centroids': self.model.pool.centroids.detach().numpy(),
                'assign': self.model.pool.conv.weight.detach().numpy()[:, :, 0, 0],
                'wpca_weight': conv.weight.detach().numpy()[:, :, 0, 0], 'wpca_bias': conv.bias.detach().numpy()}

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        require(state, ('fitted', 'centroids', 'assign', 'wpca_weight', 'wpca_bias'), self.name)
        super().load_state(state)
        self.fitted = bool(state['fitted'])
        self._maps, self.frozen = {}, self.fitted        # an empty, unfitted state keeps learning
        if not self.fitted:
            return
        k, c = self.model.pool.clusters, self.backbone.channels
        weight, bias = state['wpca_weight'], state['wpca_bias']
        shapes = {'centroids': (state['centroids'].shape, (k, c)), 'assign': (state['assign'].shape, (k, c)),
                  'wpca_weight': (weight.shape, (len(bias), k * c))}
        if len(self._vectors):
            shapes['vectors'] = (self._vectors.shape, (len(self._vectors), len(bias)))
        if wrong := [f'{name} {tuple(found)} (expected {want})' for name, (found, want) in shapes.items()
                     if tuple(found) != want]:
            raise MapFormatError(f'the saved state of place recognizer {self.name!r} does not fit backbone '
                                 f'{self.conf["backbone"]!r} with {k} clusters: {", ".join(wrong)}')
        with torch.no_grad():
            self.model.pool.centroids.copy_(torch.from_numpy(state['centroids'].astype(np.float32)))
            self.model.pool.conv.weight.copy_(torch.from_numpy(state['assign'].astype(np.float32))[:, :, None, None])
        self.model.set_wpca(weight, bias)
