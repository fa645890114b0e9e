"""NetVLAD aggregation, IntegralVLAD patch descriptors and PCA whitening, as the Patch-NetVLAD authors' code
defines them (Arandjelovic et al., CVPR 2016; Hausler et al., CVPR 2021), with their fitting and checkpoints.

Shapes: a backbone map is (1, C, H, W); K clusters; D = K * C the VLAD length; P = ``num_pcs`` the whitened length.

- ``NetVLAD``: local descriptors L2-normalised; soft assignment softmax_K(conv1x1(x)) (weight [K, C, 1, 1], no
  bias); residuals to the K centroids weighted by it (``residuals``: (1, K, C, H, W)); summed over the image
  (``global_vlad``) or over patches (``patch_vlad``); intra-normalisation over C, flatten, L2 (``vlad_normalise``).
  ``NetVLAD.initialise`` sets centroids from k-means and the conv weight to alpha times the normalised centroids with
  alpha = -ln(0.01) / mean(top-1 minus top-2 dot product of the descriptors with the normalised centroids).
- ``patch_vlad``: IntegralVLAD. The residual maps' 2-D cumulative sums I, zero-padded at the top and left, give
  each p x p patch's residual sum as I[y+p, x+p] - I[y, x+p] - I[y+p, x] + I[y, x] at y, x = 0, s, 2s, ... (what
  the authors' depthwise 2 x 2 convolution [[1, -1], [-1, 1]] at dilation p and stride s computes; taken here by
  strided slicing, which is exact and fast in float64); divided by p^2. Grid (H - p) // s + 1 by (W - p) // s + 1.
  The sums are taken in float64: a cluster whose weights in a patch are tiny is intra-normalised to unit length,
  and float32 cumulative sums would leave only their rounding error to normalise.
- ``WPCA``: a 1 x 1 convolution D -> P with weight U^T (the top P eigenvectors scaled by 1 / sqrt(lambda + 1e-9))
  and bias -U^T mu, then L2 (``whiten``); ``fit_wpca`` computes it from sample vectors.
- ``PatchNetVLAD``: ``encoder`` + ``pool`` + ``WPCA``, named as in the authors' checkpoints, which
  ``load_checkpoint`` reads strictly: ``{num_pcs, state_dict}`` with ``encoder.{0,2,...,28}.{weight,bias}``,
  ``pool.centroids`` [K, 512], ``pool.conv.weight`` [K, 512, 1, 1], ``WPCA.0.weight`` [P, K*512, 1, 1] and
  ``WPCA.0.bias`` [P] (float64 is accepted).
"""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rapnet_loc.errors import ConfigError

WPCA_EPS = 1e-9
LOWRANK_OVERSAMPLING, LOWRANK_ITERATIONS = 16, 4
EXACT_PCA_SIZE = 4096     # exact eigendecomposition up to this size (about 13 s on 2 cores)
ASSIGN_MARGIN = 0.01        # alpha makes the top-1 assignment -ln(0.01) logits above the top-2 on average


class NetVLAD(nn.Module):
    """NetVLAD pooling (see the module doc) with ``centroids`` (K, C) and the soft-assignment ``conv``."""

    def __init__(self, clusters: int, channels: int):
        super().__init__()
        self.centroids = nn.Parameter(torch.zeros(clusters, channels))
        self.conv = nn.Conv2d(channels, clusters, 1, bias=False)

    @property
    def clusters(self) -> int:
        return self.centroids.shape[0]

    def initialise(self, centroids: np.ndarray, descriptors: np.ndarray) -> None:
        """Set the centroids (K, C) from k-means over L2-normalised ``descriptors`` (N, C) and the assignment
        conv to alpha times the normalised centroids (alpha from ``descriptors``, see the module doc)."""
        unit = centroids / np.maximum(np.linalg.norm(centroids, axis=1, keepdims=True), 1e-12)
        dots = np.sort(descriptors @ unit.T, axis=1)
        alpha = -np.log(ASSIGN_MARGIN) / max(float(np.mean(dots[:, -1] - dots[:, -2])), 1e-12)
        with torch.no_grad():
            self.centroids.copy_(torch.from_numpy(centroids.astype(np.float32)))
            self.conv.weight.copy_(torch.from_numpy((alpha * unit).astype(np.float32))[:, :, None, None])

    def residuals(self, features: torch.Tensor) -> torch.Tensor:
        """(1, K, C, H, W) soft-assigned residuals of a (1, C, H, W) map."""
        x = F.normalize(features, p=2, dim=1)
        assign = F.softmax(self.conv(x), dim=1)
        return assign[:, :, None] * (x[:, None] - self.centroids[None, :, :, None, None])


def vlad_normalise(vlad: torch.Tensor, clusters: int) -> torch.Tensor:
    """Intra-normalised (per cluster), flattened and L2-normalised VLAD vectors: (N, K * C) in, (N, K * C) out."""
    n = vlad.shape[0]
    return F.normalize(F.normalize(vlad.reshape(n, clusters, -1), p=2, dim=2).reshape(n, -1), p=2, dim=1)


def global_vlad(residuals: torch.Tensor) -> torch.Tensor:
    """(1, D) NetVLAD vector of (1, K, C, H, W) residuals."""
    return vlad_normalise(residuals.sum(dim=(-2, -1)), residuals.shape[1])


def patch_grid(height: int, width: int, size: int, stride: int) -> tuple[int, int]:
    """Rows and columns of the patch grid of ``size`` x ``size`` patches at ``stride`` on an H x W map.

    Raises:
        ConfigError: the map is smaller than the patch.
    """
    if size > min(height, width):
        raise ConfigError(f'a {height}x{width} feature map is smaller than the {size}x{size} patches; use a larger '
                          f'image or smaller patch sizes')
    return (height - size) // stride + 1, (width - size) // stride + 1


def patch_vlad(residuals: torch.Tensor, size: int, stride: int) -> torch.Tensor:
    """(N, D) IntegralVLAD descriptors of every ``size`` x ``size`` patch at ``stride``, row-major over the grid
    of ``patch_grid``, from (1, K, C, H, W) residuals."""
    _, k, c, h, w = residuals.shape
    patch_grid(h, w, size, stride)
    integral = F.pad(residuals.reshape(k * c, h, w).double().cumsum(-1).cumsum(-2), (1, 0, 1, 0))
    rows, cols = patch_grid(h, w, size, stride)
    r, q = slice(0, (rows - 1) * stride + 1, stride), slice(size, size + (rows - 1) * stride + 1, stride)
    c0, c1 = slice(0, (cols - 1) * stride + 1, stride), slice(size, size + (cols - 1) * stride + 1, stride)
    sums = (integral[:, q, c1] - integral[:, r, c1] - integral[:, q, c0] + integral[:, r, c0]) / size ** 2
    return vlad_normalise(sums.reshape(k * c, -1).T.float(), k)


def whitening_layer(dim: int, num_pcs: int) -> nn.Sequential:
    """The ``WPCA`` module: a 1 x 1 convolution ``dim`` -> ``num_pcs`` (``WPCA.0`` in the checkpoints)."""
    return nn.Sequential(nn.Conv2d(dim, num_pcs, 1))


def whiten(wpca: nn.Sequential, vectors: torch.Tensor) -> torch.Tensor:
    """(N, P) whitened, L2-normalised vectors of (N, D) VLAD vectors."""
    conv = wpca[0]
    return F.normalize(F.linear(vectors, conv.weight[:, :, 0, 0], conv.bias), p=2, dim=1)


def fit_wpca(samples: np.ndarray, num_pcs: int) -> tuple[np.ndarray, np.ndarray]:
    """PCA whitening of ``samples`` (N, D): weight U^T (P, D) and bias -U^T mu (P,), P = min(num_pcs, D, N - 1).

    The eigenvectors come from the D x D covariance, or from the N x N Gram matrix when N < D; when both N and D
    exceed ``EXACT_PCA_SIZE`` and P is at most a quarter of them, from a randomized SVD (``torch.svd_lowrank``,
    seeded by the caller), whose whitening of the weaker components is less exact.
    """
    x = torch.from_numpy(np.asarray(samples, np.float32)).double()
    mu = x.mean(0)
    x = x - mu
    n, d = x.shape
    pcs = max(1, min(num_pcs, d, n - 1))
    if min(n, d) > EXACT_PCA_SIZE and pcs <= min(n, d) // 4:
        _, s, v = torch.svd_lowrank(x.float(), q=pcs + LOWRANK_OVERSAMPLING, niter=LOWRANK_ITERATIONS)
        lam, u = (s[:pcs].double() ** 2) / n, v[:, :pcs].double()
    elif n < d:
        lam, v = torch.linalg.eigh(x @ x.T / n)
        lam, v = lam.flip(0)[:pcs].clamp_min(0), v.flip(1)[:, :pcs]
        u = x.T @ v / torch.sqrt(lam * n).clamp_min(1e-12)
    else:
        lam, u = torch.linalg.eigh(x.T @ x / n)
        lam, u = lam.flip(0)[:pcs].clamp_min(0), u.flip(1)[:, :pcs]
    u = u / torch.sqrt(lam + WPCA_EPS)
    return u.T.float().numpy(), (-(u.T @ mu)).float().numpy()


class PatchNetVLAD(nn.Module):
    """Backbone ``encoder``, NetVLAD ``pool`` and ``WPCA``, named as the authors' modules (see the module doc)."""

    def __init__(self, encoder: nn.Module, channels: int, clusters: int, num_pcs: int):
        super().__init__()
        self.encoder = encoder
        self.pool = NetVLAD(clusters, channels)
        self.WPCA = whitening_layer(clusters * channels, num_pcs)

    @property
    def num_pcs(self) -> int:
        return self.WPCA[0].out_channels

    def set_wpca(self, weight: np.ndarray, bias: np.ndarray) -> None:
        """Replace the whitening by ``weight`` (P, D) and ``bias`` (P,) (P may differ from the current one)."""
        self.WPCA = whitening_layer(weight.shape[1], weight.shape[0])
        with torch.no_grad():
            self.WPCA[0].weight.copy_(torch.tensor(np.asarray(weight), dtype=torch.float32)[:, :, None, None])
            self.WPCA[0].bias.copy_(torch.tensor(np.asarray(bias), dtype=torch.float32))


def open_checkpoint(path: str | Path) -> dict:
    """The dict of a Patch-NetVLAD checkpoint file: ``state_dict``, ``num_pcs`` and, in the files of
    ``rapnet_loc.vpr.train``, ``backbone`` and ``clusters``.

    Raises:
        ConfigError: unreadable, or not a dict with a ``state_dict``.
    """
    try:
        checkpoint = torch.load(path, map_location='cpu', weights_only=True)
    except (OSError, RuntimeError, ValueError, EOFError, pickle.UnpicklingError) as exc:
        raise ConfigError(f'cannot read Patch-NetVLAD checkpoint {path}: {exc}') from None
    if not isinstance(checkpoint, dict) or 'state_dict' not in checkpoint:
        raise ConfigError(f'{path} is not a Patch-NetVLAD checkpoint: expected a dict with num_pcs and state_dict')
    return checkpoint


def read_checkpoint(path: str | Path) -> tuple[int, dict[str, torch.Tensor]]:
    """``num_pcs`` and ``state_dict`` of a Patch-NetVLAD checkpoint file (``open_checkpoint``)."""
    checkpoint = open_checkpoint(path)
    state = checkpoint['state_dict']
    num_pcs = int(checkpoint.get('num_pcs', state['WPCA.0.bias'].shape[0] if 'WPCA.0.bias' in state else 0))
    return num_pcs, state


def load_checkpoint(model: PatchNetVLAD, state: dict[str, torch.Tensor], source: str = 'checkpoint',
                    encoder: bool = True) -> None:
    """Load an official state dict into ``model`` strictly (its ``WPCA`` resized to the checkpoint's P and its
    pool to the checkpoint's K); without ``encoder``, a state dict with no ``encoder.*`` keys, the model keeping its
    encoder.

    Raises:
        ConfigError: missing or unexpected keys, or tensors of the wrong shape (the message names them).
    """
    if 'pool.centroids' in state and 'WPCA.0.weight' in state:
        k = state['pool.centroids'].shape[0]
        p = state['WPCA.0.weight'].shape[0]
        channels = model.pool.centroids.shape[1]
        model.pool = NetVLAD(k, channels)
        model.WPCA = whitening_layer(k * channels, p)
    expected = {key: value for key, value in model.state_dict().items() if encoder or not key.startswith('encoder.')}
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    wrong = [f'{key} {tuple(state[key].shape)} (expected {tuple(value.shape)})' for key, value in expected.items()
             if key in state and tuple(state[key].shape) != tuple(value.shape)]
    if missing or unexpected or wrong:
        raise ConfigError(f'{source} does not fit the Patch-NetVLAD layout: missing keys: {_names(missing)}; '
                          f'unexpected keys: {_names(unexpected)}; wrong shapes: {_names(wrong)}')
    model.load_state_dict({key: value.float() for key, value in state.items()}, strict=encoder)


def _names(names: list[str], shown: int = 6) -> str:
    if not names:
        return 'none'
    more = f' and {len(names) - shown} more' if len(names) > shown else ''
    return ', '.join(names[:shown]) + more
