"""RaP-Net keypoints (``rapnet``: point weight P re-weighted by region weight R) and ``rapnet_p`` (P only).

Single scale: the image is shrunk so that its longer edge is at most ``max_edge``, run through the dense network
(``rapnet_loc.rapnet``: PyTorch or ONNX Runtime), then detected, suppressed and ranked by ``rapnet_loc.rapnet.detect``.
Keypoints are returned in the original image's pixels; descriptors are L2-normalised float32 columns of F
(512-D at full width, ``512 * width`` otherwise), compared by Euclidean distance. With ``descriptor_scales`` (our
option, not the authors'), the keypoints stay those of the single-scale run but their descriptors come from runs
on smaller copies of the image (``detect.pooled_descriptors``): the network never downsamples, so its descriptors
see about 33 px of its input, and a smaller copy gives them more of the scene. ``region_scale`` (ours too) takes the
region weight R from such a run.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from rapnet_loc.errors import ConfigError
from rapnet_loc.features.base import FeatureExtractor, Features, register
from rapnet_loc.rapnet.detect import EDGE_RATIO, NMS_RADIUS, detect, pooled_descriptors
from rapnet_loc.rapnet.model import descriptor_size
from rapnet_loc.rapnet.preprocess import has_texture, normalize, resize_max_edge, to_rgb
from rapnet_loc.rapnet.runtime import OnnxRunner, TorchRunner
from rapnet_loc.rapnet.weights import (DEFAULT_WIDTH, PREPROCESSING, default_weights, load_model, random_model,
                                      require_width)

BACKENDS = ('torch', 'onnx')


def _is_factor(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value <= 1


@register('rapnet')
class RaPNet(FeatureExtractor):
    """RaP-Net keypoints: score = P / sum(P) * exp(R - mean(R)) over the NMS survivors, best ``max_keypoints``.

    Options:
        backend: ``'torch'`` or ``'onnx'`` (a file from ``rapnet-loc export-onnx``).
        weights: weights file (``.pt``/``.pth`` for torch, ``.onnx`` for onnx); None: ``models/rapnet_wNNN.pt``
            (or ``.onnx``) of ``width``, and a clear error when it is absent.
        width: width multiplier of the network; must match the weights (the authors' files are 1.0).
        max_edge: longer image edge at the network input (the image is shrunk, never enlarged).
        max_keypoints: keypoints kept (the authors keep 520).
        nms_radius, edge_ratio: NMS box half-size in pixels; D2-Net edge-test ratio.
        subpixel: refine keypoint positions by D2-Net's sub-pixel localisation (``detect.subpixel_offsets``); the
            authors' ``extract_features.py`` reports the integer pixels (``subpixel: false``).
        descriptor_scales: empty (the authors'): descriptor = F at the keypoint. A list of factors in (0, 1], e.g.
            ``[0.25, 0.5]``: the network also runs on the image shrunk to these fractions of its input size, and a
            keypoint's descriptor is the L2-normalised sum of those maps sampled bilinearly at the keypoint.
        region_scale: ``rapnet`` only. None (the authors'): R from F. A factor in (0, 1], e.g. ``0.25``: R from the
            run on the image shrunk by that factor (shared with ``descriptor_scales``), upsampled bilinearly; the
            region head then judges regions with more of the scene in view.
        device: ``'auto'`` (CUDA when present), ``'cpu'``, ``'cuda'``...
        precision: torch backend: ``'fp32'``, ``'fp16'`` (CUDA) or ``'bf16'``.
        channels_last: torch backend: channels-last memory format.
        preprocessing: None (the weights' own: "torch" for RaP-Net, "caffe" for D2-Net) or an override.
        random_init: torch backend without weights: random weights drawn from ``seed`` (tests and benchmarks
            only; the keypoints mean nothing).
    """

    default_conf = {'backend': 'torch', 'weights': None, 'width': DEFAULT_WIDTH, 'max_edge': 640,
                    'max_keypoints': 520, 'nms_radius': NMS_RADIUS, 'edge_ratio': EDGE_RATIO, 'subpixel': True,
                    'descriptor_scales': [], 'region_scale': None, 'device': 'auto', 'precision': 'fp32',
                    'channels_last': True, 'preprocessing': None, 'random_init': False, 'seed': 0}
    use_region = True

    def __init__(self, conf: dict | None = None):
        super().__init__(conf)
        c = self.conf
        if c['backend'] not in BACKENDS:
            raise ConfigError(f'unknown RaP-Net backend {c["backend"]!r}; expected one of {", ".join(BACKENDS)}')
        if int(c['max_edge']) < 1 or int(c['max_keypoints']) < 0:
            raise ConfigError(f'RaP-Net max_edge must be >= 1 and max_keypoints >= 0, got {c["max_edge"]} and '
                              f'{c["max_keypoints"]}')
        scales = c['descriptor_scales'] or []
        if not isinstance(scales, (list, tuple)) or not all(map(_is_factor, scales)):
            raise ConfigError(f'RaP-Net descriptor_scales must be a list of factors in (0, 1], got {scales!r}')
        c['descriptor_scales'] = list(scales)      # YAML null: none
        if c['region_scale'] is not None and not _is_factor(c['region_scale']):
            raise ConfigError(f'RaP-Net region_scale must be empty or a factor in (0, 1], got {c["region_scale"]!r}')
        if c['preprocessing'] not in (None, *PREPROCESSING):
            raise ConfigError(f'unknown preprocessing {c["preprocessing"]!r}; expected {" or ".join(PREPROCESSING)}')
        if c['backend'] == 'onnx':
            self.runner = OnnxRunner(c['weights'] or default_weights(c['width'], '.onnx'), c['device'])
            require_width(self.runner.info.path, self.runner.info.width, c['width'])
        else:
            if c['random_init'] and c['weights'] is None:
                model, info = random_model(c['width'], c['seed'])
            else:
                model, info = load_model(c['weights'] or default_weights(c['width']), c['width'], self.use_region)
            self.runner = TorchRunner(model, info, c['device'], c['precision'], c['channels_last'])
        if self.use_region and not self.runner.info.region:
            raise ConfigError(f'{self.runner.info.path} has no region head; the rapnet extractor needs one '
                              f'(rapnet_p works without)')
        self.preprocessing = c['preprocessing'] or self.runner.info.preprocessing

    def _empty(self) -> Features:
        return Features.empty(descriptor_size(self.runner.info.width), 'l2')

    def _run(self, rgb: np.ndarray, region: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        """F (C, h, w) and, when ``region``, R (h, w) of an (h, w, 3) RGB network input."""
        features, r = self.runner(normalize(rgb, self.preprocessing), region)
        if not (torch.isfinite(features).all() and (r is None or torch.isfinite(r).all())):
            raise ConfigError(f'RaP-Net produced NaN or infinite outputs with weights {self.runner.info.path}: '
                              f'the weights are corrupt')
        return features, r

    def extract(self, image: np.ndarray) -> Features:
        rgb = to_rgb(image)
        small = resize_max_edge(rgb, int(self.conf['max_edge']))
        if not has_texture(small) or self.conf['max_keypoints'] == 0:
            return self._empty()
        edge, region_scale = max(small.shape[:2]), self.conf['region_scale'] if self.use_region else None
        features, region = self._run(small, self.use_region and not region_scale)
        runs = {s: self._run(resize_max_edge(rgb, max(1, round(edge * s))), s == region_scale)
                for s in {*self.conf['descriptor_scales'], *([region_scale] if region_scale else [])}}
        if region_scale:
            region = F.interpolate(runs[region_scale][1][None, None], size=features.shape[1:], mode='bilinear',
                                   align_corners=False)[0, 0]
        found = detect(features, region, int(self.conf['max_keypoints']), int(self.conf['nms_radius']),
                       float(self.conf['edge_ratio']), bool(self.conf['subpixel']))
        descriptors = found.descriptors
        if scales := self.conf['descriptor_scales']:
            descriptors = pooled_descriptors([runs[s][0] for s in scales], found.ij + found.offsets, small.shape[:2])
        scale = np.array([rgb.shape[1] / small.shape[1], rgb.shape[0] / small.shape[0]])
        xy = ((found.ij + found.offsets)[:, ::-1] + 0.5) * scale - 0.5
        return Features(xy, found.scores, descriptors, 'l2', weights=found.region)


@register('rapnet_p')
class RaPNetP(RaPNet):
    """RaP-Net's P-only ablation: keypoints ranked by the point weight P alone (no region head needed)."""

    use_region = False
