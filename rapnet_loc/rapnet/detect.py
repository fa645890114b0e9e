"""Keypoints from the dense outputs: D2-Net hard detection, greedy NMS, RaP-Net scoring and top-K selection,
D2-Net's sub-pixel localisation of the selected keypoints, and (an option of ours) their descriptors pooled from
runs of the network on smaller copies of the image (``pooled_descriptors``).

This post-processing is exact (no approximation of the authors' definitions) and is shared by the PyTorch and the
ONNX Runtime paths: both hand it F (C, H, W) and R (H, W) as float32 tensors. Positions are (i, j) = (row, column)
pixels of the network input.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from rapnet_loc.features.base import rap_scores

EDGE_RATIO = 5.0         # D2-Net's edge threshold r: keep tr^2 / det <= (r + 1)^2 / r
LOCAL_MAX_SIZE = 27      # D2-Net's local-maximum window (stride 1, padding 13)
NMS_RADIUS = 4           # greedy NMS over a (2 * 4 + 1)^2 = 9x9 box
_CHUNK = 4096


@dataclass
class Detections:
    """Selected keypoints, best first.

    Attributes:
        ij: (K, 2) int64 (row, column) in the network input.
        offsets: (K, 2) float64 sub-pixel (row, column) offsets in [-0.5, 0.5] (``subpixel_offsets``; zeros when
            not refined): the keypoint lies at ``ij + offsets``.
        scores: (K,) float64 selection scores.
        descriptors: (K, C) float32 L2-normalised ``F[:, i, j]``.
        region: (K,) float32 region weight ``R[i, j]`` (1 when ranked by P alone).
    """

    ij: np.ndarray
    offsets: np.ndarray
    scores: np.ndarray
    descriptors: np.ndarray
    region: np.ndarray


def hard_detection(features: torch.Tensor, edge_ratio: float = EDGE_RATIO,
                   window: int = LOCAL_MAX_SIZE) -> tuple[torch.Tensor, torch.Tensor]:
    """D2-Net's ``HardDetectionModule`` on one feature map.

    (c, i, j) is detected when F[c, i, j] is the maximum over channels at (i, j), the maximum of channel c over the
    ``window`` x ``window`` box around (i, j) (clipped to the image), and passes the edge test on the 3x3
    finite-difference Hessian of channel c (zero outside the image): det > 0 and tr^2 / det <= (r + 1)^2 / r.
    Only the maximal channel of each pixel can pass, so the tests are evaluated for that channel alone (ties go
    to the lowest channel index), first on the 3x3 neighbourhood and then on the full window for the survivors.

    Args:
        features: (C, H, W) float tensor F.
    Returns:
        (N, 2) int64 positions (i, j) in row-major order and (N,) P = F[c, i, j] on F's device.
    """
    c, h, w = features.shape
    peak, channel = features.max(dim=0)
    flat, base = features.reshape(-1), channel * (h * w)
    step = torch.arange(-1, 2, device=features.device)
    rows = torch.arange(h, device=features.device).view(1, 1, h, 1) + step.view(3, 1, 1, 1)
    cols = torch.arange(w, device=features.device).view(1, 1, 1, w) + step.view(1, 3, 1, 1)
    # (3, 3, H, W): F[channel(i, j), i + di, j + dj], the position clipped to the image, and the same with 0 outside
    near = flat[base + rows.clamp(0, h - 1) * w + cols.clamp(0, w - 1)]
    zero = torch.where((rows >= 0) & (rows < h) & (cols >= 0) & (cols < w), near, 0.0)
    dii = zero[0, 1] - 2 * peak + zero[2, 1]
    djj = zero[1, 0] - 2 * peak + zero[1, 2]
    dij = 0.25 * (zero[0, 0] - zero[0, 2] - zero[2, 0] + zero[2, 2])
    det, tr = dii * djj - dij * dij, dii + djj
    candidate = (tr * tr / det <= (edge_ratio + 1) ** 2 / edge_ratio) & (det > 0) & (near <= peak).all(0).all(0)
    ij = candidate.nonzero()
    offsets = torch.arange(-(window // 2), window // 2 + 1, device=features.device)
    keep = []
    for part in ij.split(_CHUNK):
        r = (part[:, :1] + offsets).clamp(0, h - 1)
        q = (part[:, 1:] + offsets).clamp(0, w - 1)
        box = flat[base[part[:, 0], part[:, 1]].view(-1, 1, 1) + r[:, :, None] * w + q[:, None, :]]
        keep.append(box.amax(dim=(1, 2)) <= peak[part[:, 0], part[:, 1]])
    ij = ij[torch.cat(keep)] if keep else ij
    return ij, peak[ij[:, 0], ij[:, 1]]


def _neighbourhood(features: torch.Tensor, ij: torch.Tensor) -> torch.Tensor:
    """(N, 3, 3) values of each position's maximal channel around (i, j), zero outside the map.

    Args:
        features: (C, H, W) F; ij: (N, 2) int64 positions.
    """
    _, h, w = features.shape
    channel = features[:, ij[:, 0], ij[:, 1]].argmax(dim=0)
    step = torch.arange(-1, 2, device=features.device)
    rows = ij[:, 0].view(-1, 1, 1) + step.view(1, 3, 1)
    cols = ij[:, 1].view(-1, 1, 1) + step.view(1, 1, 3)
    inside = (rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)
    values = features[channel.view(-1, 1, 1), rows.clamp(0, h - 1), cols.clamp(0, w - 1)]
    return torch.where(inside, values, 0.0)


def subpixel_offsets(features: torch.Tensor, ij: torch.Tensor) -> torch.Tensor:
    """D2-Net's ``HandcraftedLocalizationModule`` at detected positions: one Newton step -H^-1 g on the detected
    channel, from the same finite differences as the edge test (zero outside the map).

    D2-Net drops detections whose step exceeds half a pixel in either axis; here the step is clipped to
    [-0.5, 0.5] instead, so refinement never changes which keypoints are selected.

    Args:
        features: (C, H, W) F; ij: (N, 2) int64 positions.
    Returns:
        (N, 2) float64 (row, column) offsets in [-0.5, 0.5].
    """
    if len(ij) == 0:
        return torch.zeros((0, 2), dtype=torch.float64)
    v = _neighbourhood(features, ij).double()
    di, dj = 0.5 * (v[:, 2, 1] - v[:, 0, 1]), 0.5 * (v[:, 1, 2] - v[:, 1, 0])
    dii = v[:, 0, 1] - 2 * v[:, 1, 1] + v[:, 2, 1]
    djj = v[:, 1, 0] - 2 * v[:, 1, 1] + v[:, 1, 2]
    dij = 0.25 * (v[:, 0, 0] - v[:, 0, 2] - v[:, 2, 0] + v[:, 2, 2])
    det = dii * djj - dij * dij
    step = -torch.stack([djj * di - dij * dj, dii * dj - dij * di], dim=1) / det.unsqueeze(1)
    return torch.nan_to_num(step, nan=0.0).clamp(-0.5, 0.5).cpu()


def sample(maps: torch.Tensor, ij: torch.Tensor) -> torch.Tensor:
    """Bilinear samples of (C, H, W) ``maps`` at (N, 2) float positions (i, j) in pixels: (N, C)."""
    h, w = maps.shape[-2:]
    grid = torch.stack([ij[:, 1] / max(w - 1, 1), ij[:, 0] / max(h - 1, 1)], dim=-1) * 2 - 1
    return F.grid_sample(maps[None], grid.view(1, 1, -1, 2).to(maps.dtype), align_corners=True)[0, :, 0].T


def pooled_descriptors(maps: list[torch.Tensor], ij: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Descriptors of keypoints found in an (H, W) network input, taken from the feature maps of the same image run
    at smaller sizes: each map is sampled bilinearly where the keypoint falls in it (pixel centres aligned, the
    position clipped to the map), the samples are summed and L2-normalised.

    Args:
        maps: (C, h, w) float F of each smaller run; ij: (N, 2) float (row, column) positions in the (H, W) input.
    Returns:
        (N, C) float32.
    """
    if len(ij) == 0:
        return np.zeros((0, maps[0].shape[0]), np.float32)
    ij = torch.from_numpy(np.asarray(ij, np.float64))
    total = 0
    for f in maps:
        size = torch.tensor(f.shape[1:], dtype=torch.float64)
        at = ((ij + 0.5) * size / torch.tensor(shape, dtype=torch.float64) - 0.5).clamp(torch.zeros(2), size - 1)
        total = total + sample(f.float(), at.to(f.device))
    return F.normalize(total, dim=1).cpu().numpy()


def nms(ij: np.ndarray, scores: np.ndarray, shape: tuple[int, int], radius: int = NMS_RADIUS) -> np.ndarray:
    """Greedy non-maximum suppression in descending ``scores`` (ties: lower index first).

    A point is kept unless a kept point lies within ``radius`` pixels in both rows and columns (a box of side
    2 * radius + 1), as the authors' ``nms_point`` does.

    Args:
        ij: (N, 2) int positions inside ``shape`` (H, W); scores: (N,).
    Returns:
        (M,) int64 indices into ``ij`` of the kept points, in descending score.
    """
    free = np.ones((shape[0] + 2 * radius, shape[1] + 2 * radius), bool)
    kept = []
    for k in np.argsort(-np.asarray(scores), kind='stable'):
        i, j = ij[k]
        if free[i + radius, j + radius]:
            kept.append(k)
            free[i:i + 2 * radius + 1, j:j + 2 * radius + 1] = False
    return np.asarray(kept, np.int64)


def detect(features: torch.Tensor, region: torch.Tensor | None, max_keypoints: int,
           nms_radius: int = NMS_RADIUS, edge_ratio: float = EDGE_RATIO, subpixel: bool = True) -> Detections:
    """Keypoints of one image: hard detection, NMS on P, scores (``rap_scores``), the best ``max_keypoints``, and
    their sub-pixel offsets (``subpixel_offsets``; zeros when ``subpixel`` is false).

    Args:
        features: (C, H, W) float32 F; region: (H, W) float32 R, or None to rank by P alone.
    """
    ij, p = hard_detection(features, edge_ratio)
    ij_np, p_np = ij.cpu().numpy(), p.cpu().numpy()
    kept = nms(ij_np, p_np, features.shape[1:], nms_radius)
    if len(kept) == 0:
        return Detections(np.zeros((0, 2), np.int64), np.zeros((0, 2)), np.zeros(0),
                          np.zeros((0, features.shape[0]), np.float32), np.zeros(0, np.float32))
    r = None if region is None else region[ij[kept, 0], ij[kept, 1]].cpu().numpy()
    scores = rap_scores(p_np[kept], r)
    order = np.argsort(-scores, kind='stable')[:max_keypoints]
    pos = ij[torch.from_numpy(kept[order]).to(ij.device)]
    descriptors = F.normalize(features[:, pos[:, 0], pos[:, 1]].T, dim=1)
    region = np.ones(len(order), np.float32) if r is None else r[order].astype(np.float32)
    offsets = subpixel_offsets(features, pos).numpy() if subpixel else np.zeros((len(order), 2))
    return Detections(ij_np[kept[order]], offsets, scores[order], descriptors.cpu().numpy(), region)
