"""RaP-Net dense network: the full-resolution VGG16 base net (features F) and the region head (weights R).

Shapes use B for the batch, H x W for the input size; every output keeps the input resolution. ``width`` scales
every channel count (``scaled``), so ``width=0.25`` has 1/16 of the multiply-adds of the authors' network.
The modules only hold convolutions and normalisations; pools, activations and upsampling are functional, so the
graph exports to ONNX with dynamic H and W (``rapnet_loc.rapnet.onnx``).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

VGG_BLOCKS = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512))   # conv1_x .. conv4_x (conv4 dilated)
REGION_CHANNELS = 32
REGION_KERNELS = (3, 5, 7)
POOLS = {1: F.max_pool2d, 3: F.max_pool2d, 6: F.avg_pool2d}    # 3x3 stride-1 pools after conv1_2, conv2_2, conv3_3


def scaled(channels: int, width: float) -> int:
    """Channel count ``channels`` scaled by the width multiplier (at least 1)."""
    return max(1, round(channels * width))


def descriptor_size(width: float) -> int:
    """Channels of F (descriptor length) at ``width``: 512 at full width."""
    return scaled(VGG_BLOCKS[-1][-1], width)


class BaseNet(nn.Module):
    """VGG16 up to conv4_3 with resolution-keeping pools (RaP-Net's ``DenseFeatureExtractionModule``).

    ReLU after every convolution, the last included; pool1 and pool2 are 3x3 max pools and pool3 a 3x3 average
    pool, all stride 1 and padding 1; conv4_x have dilation 2. ``convs[k]`` is the k-th convolution (conv1_1 ..
    conv4_3).

    Input: (B, 3, H, W) normalised image. Output F: (B, C, H, W), C = ``descriptor_size(width)``, F >= 0.
    """

    def __init__(self, width: float = 1.0):
        super().__init__()
        convs, c_in = [], 3
        for block, channels in enumerate(VGG_BLOCKS):
            dilation = 2 if block == 3 else 1
            for c in channels:
                convs.append(nn.Conv2d(c_in, scaled(c, width), 3, padding=dilation, dilation=dilation))
                c_in = scaled(c, width)
        self.convs = nn.ModuleList(convs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for k, conv in enumerate(self.convs):
            x = F.relu(conv(x))
            if (pool := POOLS.get(k)) is not None:
                x = pool(x, 3, stride=1, padding=1)
        return x


class RegionHead(nn.Module):
    """Region weight R (RaP-Net's ``RegionWeight``): where in the image features are worth keeping.

    3x3 max pool stride 2 (to ceil(H/2) x ceil(W/2)), 3x3 average pool stride 1, three parallel branches
    conv(k x k, no bias) -> BatchNorm -> ReLU with k = 3, 5, 7, concatenated, conv 1x1 -> Softplus, nearest x2
    upsampling cropped to H x W.

    Input F: (B, C, H, W), C = ``in_channels`` (default: RaP-Net's ``descriptor_size(width)``; another
    network's feature map for the region weighting of other extractors, ``rapnet_loc.features.region``). Output R:
    (B, H, W), R > 0.
    """

    def __init__(self, width: float = 1.0, in_channels: int | None = None):
        super().__init__()
        c_in, c_mid = in_channels or descriptor_size(width), scaled(REGION_CHANNELS, width)
        self.branches = nn.ModuleList(nn.Conv2d(c_in, c_mid, k, padding=k // 2, bias=False) for k in REGION_KERNELS)
        self.norms = nn.ModuleList(nn.BatchNorm2d(c_mid) for _ in REGION_KERNELS)
        self.score = nn.Conv2d(c_mid * len(REGION_KERNELS), 1, 1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        h, w = features.shape[-2:]
        x = F.max_pool2d(features, 3, stride=2, padding=1)
        x = F.avg_pool2d(x, 3, stride=1, padding=1)
        x = torch.cat([F.relu(norm(conv(x))) for conv, norm in zip(self.branches, self.norms)], dim=1)
        r = F.softplus(self.score(x))
        return F.interpolate(r, scale_factor=2.0, mode='nearest')[:, 0, :h, :w]


class RapNet(nn.Module):
    """Base net and, with ``region=True``, the region head.

    Input: (B, 3, H, W) normalised image. Output: F (B, C, H, W) and R (B, H, W), or F alone without a region head.
    """

    def __init__(self, width: float = 1.0, region: bool = True):
        super().__init__()
        self.width = float(width)
        self.backbone = BaseNet(width)
        self.region = RegionHead(width) if region else None

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | torch.Tensor:
        features = self.backbone(image)
        return features if self.region is None else (features, self.region(features))


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters (BatchNorm running statistics excluded)."""
    return sum(p.numel() for p in module.parameters())
