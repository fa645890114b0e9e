"""Region weighting for other extractors (RaP-Net's R on other detectors): ``xfeat_r`` and ``orb_r``.

A region head (``rapnet_loc.rapnet.model.RegionHead``) predicts R from XFeat's dense descriptor map (64 channels at
1/8 of the network input). An extractor's candidate keypoints (XFeat's NMS survivors, ORB's oversampled corners)
are ranked by P / sum(P) * exp(R - mean(R)) (``base.rap_scores``, RaP-Net's score: P is the detector's own
score) before its cut to ``max_keypoints``, so that, as RaP-Net intends, points on regions the head judges unstable
lose out (whether a head has learnt that is measured by ``benchmarks/bench_ablation.py``; the shipped one has not,
see ``models/region_xfeat.md``). ``xfeat_r`` takes R from its own network run; ``orb_r`` runs XFeat's network on
the image for it.

The head is trained by ``rapnet-loc train-rapnet --stage region --backbone xfeat`` (the ratio loss on region-weighted
global descriptors of XFeat's frozen map, as RaP-Net trains its head on its frozen base net) and saved as
``region_xfeat.pt``: the head's state, its input channels and the run's metadata. ``region_weights`` None loads
``models/region_xfeat.pt``.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

from rapnet_loc.errors import ConfigError
from rapnet_loc.features.base import rap_scores, register
from rapnet_loc.features.orb import ORB
from rapnet_loc.features.xfeat import MULTIPLE, XFeat, XFeatNetwork, network_input, sample
from rapnet_loc.io.atomic import atomic_write
from rapnet_loc.rapnet.model import RegionHead
from rapnet_loc.rapnet.weights import model_dirs
from rapnet_loc.registry import require_number

REGION_FILE = 'region_xfeat.pt'
XFEAT_CHANNELS = 64


def new_region_head(seed: int = 0) -> RegionHead:
    """A randomly initialised (seeded) region head on XFeat's 64-channel map."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return RegionHead(1.0, XFEAT_CHANNELS)


def save_region_head(path: str | Path, head: RegionHead, meta: dict | None = None) -> Path:
    """Write ``head`` with its input channels and ``meta`` (the training run) atomically to ``path``."""
    obj = {'region_head': {k: v.detach().cpu() for k, v in head.state_dict().items()},
           'config': {'backbone': 'xfeat', 'in_channels': XFEAT_CHANNELS}, 'meta': dict(meta or {})}
    with atomic_write(path, 'wb') as fh:
        torch.save(obj, fh)
    return Path(path)


def default_region_weights() -> Path:
    """``region_xfeat.pt`` in ``model_dirs()``.

    Raises:
        ConfigError: it is in none of them; the message says how to make one.
    """
    for folder in model_dirs():
        if (folder / REGION_FILE).is_file():
            return folder / REGION_FILE
    raise ConfigError(f'no region head weights: expected {REGION_FILE} in {" or ".join(map(str, model_dirs()))}; '
                      f'train one with `rapnet-loc train-rapnet FOLDER --stage region --backbone xfeat --out OUT` '
                      f'or set the region_weights option')


def load_region_head(path: str | Path | None) -> RegionHead:
    """The region head of a file written by ``save_region_head`` (None: ``default_region_weights()``), in eval mode.

    Raises:
        ConfigError: missing, unreadable or not a region head of XFeat's map.
    """
    path = Path(path) if path else default_region_weights()
    if not path.is_file():
        raise ConfigError(f'region head weights not found: {path}')
    try:
        obj = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as exc:   # torch raises pickle, zip and runtime errors for damaged files
        raise ConfigError(f'cannot read region head weights {path}: {str(exc).splitlines()[0]}') from None
    if not isinstance(obj, dict) or 'region_head' not in obj or obj.get('config', {}).get('backbone') != 'xfeat':
        raise ConfigError(f'{path} is not a region head of XFeat\'s map (a file from `rapnet-loc train-rapnet '
                          f'--stage region --backbone xfeat`)')
    head = RegionHead(1.0, XFEAT_CHANNELS)
    try:
        head.load_state_dict(obj['region_head'])
    except RuntimeError as exc:
        raise ConfigError(f'{path}: region head of another shape ({str(exc).splitlines()[0]})') from None
    return head.eval()


def region_at(head: RegionHead, features: torch.Tensor, xy: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(N,) R at (N, 2) pixel positions ``xy`` of a network input of ``size`` (H, W), from XFeat's map
    ``features`` (1, 64, H/8, W/8)."""
    with torch.inference_mode():
        region = head(features.float())
    return sample(region[:, None], xy, size, 'bilinear', 'border')[:, 0]


@register('xfeat_r')
class XFeatR(XFeat):
    """XFeat keypoints ranked by P * exp(R - mean R) (P: XFeat's heat x reliability) before the top-k cut.

    Options: those of ``xfeat``, and ``region_weights`` (a region head file; None: ``models/region_xfeat.pt``).
    """

    default_conf = {**XFeat.default_conf, 'region_weights': None}

    def __init__(self, conf: dict | None = None):
        super().__init__(conf)
        self.head = load_region_head(self.conf['region_weights'])

    def rerank(self, features: torch.Tensor, xy: torch.Tensor, scores: torch.Tensor,
               size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        r = region_at(self.head, features, xy, size)
        return torch.from_numpy(rap_scores(scores.numpy(), r.numpy())), r


@register('orb_r')
class ORBR(ORB):
    """ORB's candidate corners ranked by response * exp(R - mean R) before the grid selection, R from XFeat's map.

    Options: those of ``orb`` (``grid_cell`` > 0: the ranking acts within the ``oversample`` x ``max_keypoints``
    candidates), ``region_weights`` (a region head file; None: ``models/region_xfeat.pt``), ``max_edge`` (longer
    edge of XFeat's input) and ``device`` (of XFeat's network: ``'auto'``, ``'cpu'``...).
    """

    default_conf = {**ORB.default_conf, 'region_weights': None, 'max_edge': 640, 'device': 'auto'}

    def __init__(self, conf: dict | None = None):
        super().__init__(conf)
        if self.conf['grid_cell'] <= 0 or self.conf['oversample'] <= 1:
            raise ConfigError('orb_r ranks oversampled candidates: it needs grid_cell > 0 and oversample > 1, got '
                              f'{self.conf["grid_cell"]} and {self.conf["oversample"]}')
        require_number('orb_r', 'max_edge', self.conf['max_edge'], MULTIPLE, integer=True)
        self.head = load_region_head(self.conf['region_weights'])
        self.network = XFeatNetwork(self.conf['device'], 'extractor orb')

    def region_weights(self, gray: np.ndarray, keypoints: list[cv2.KeyPoint]) -> np.ndarray:
        x, scale = network_input(gray, self.conf['max_edge'])
        features = self.network(x)[0]
        xy = torch.from_numpy((cv2.KeyPoint_convert(keypoints) / scale).astype(np.float32))
        return region_at(self.head, features, xy, x.shape[2:]).numpy()
