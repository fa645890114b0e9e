"""Training losses: D2-Net's detection-weighted triplet margin loss and InfoNCE (base net), two repeatability
losses for the hard detections (peak alignment; R2D2's patch cosine on a sharp soft detection map; base net), and
RaP-Net's ratio loss on region-weighted global descriptors (region head)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from rapnet_loc.rapnet.detect import LOCAL_MAX_SIZE, NMS_RADIUS, hard_detection, sample

SOFT_LOCAL_MAX_SIZE = 3


def soft_detection(features: torch.Tensor) -> torch.Tensor:
    """D2-Net's ``SoftDetectionModule``: per-pixel detection scores summing to 1 over each image.

    score(i, j) = max_c [exp(F_c / max F) / sum_3x3 exp(F_c / max F)] * [F_c / max_c' F_c'], normalised.
    Input (B, C, H, W) features; output (B, H, W).
    """
    b = features.shape[0]
    features = F.relu(features)
    exp = torch.exp(features / features.reshape(b, -1).max(dim=1)[0].clamp_min(1e-12).view(b, 1, 1, 1))
    pad = SOFT_LOCAL_MAX_SIZE // 2
    sum_exp = SOFT_LOCAL_MAX_SIZE ** 2 * F.avg_pool2d(F.pad(exp, [pad] * 4, value=1.0), SOFT_LOCAL_MAX_SIZE, 1)
    depth_wise = features / features.max(dim=1, keepdim=True)[0].clamp_min(1e-12)
    score = (exp / sum_exp * depth_wise).max(dim=1)[0]
    return score / score.reshape(b, -1).sum(dim=1).view(b, 1, 1)


def near_mask(center: torch.Tensor, h: int, w: int, radius: int) -> torch.Tensor:
    """(N, H * W) bool: pixel (row-major) within ``radius`` (Chebyshev) of each (N, 2) int64 ``center`` (i, j)."""
    i = torch.arange(h, device=center.device).repeat_interleave(w)
    j = torch.arange(w, device=center.device).repeat(h)
    return torch.maximum((center[:, None, 0] - i).abs(), (center[:, None, 1] - j).abs()) <= radius


def d2_triplet_loss(f1: torch.Tensor, f2: torch.Tensor, pos1: torch.Tensor, pos2: torch.Tensor,
                    margin: float = 1.0, safe_radius: int = 4) -> torch.Tensor:
    """D2-Net's loss for one image pair.

    For each correspondence, the positive distance is between the descriptors at ``pos1`` and ``pos2``; the
    negative is the hardest (nearest) descriptor of either image farther than ``safe_radius`` pixels (Chebyshev)
    from the true match. Distances are squared L2 of normalised descriptors (2 - 2 cos). The hinge
    relu(margin + positive - negative) is averaged with weights s1 * s2 (``soft_detection`` at the two ends).

    Args:
        f1, f2: (C, H, W) dense features; pos1: (N, 2) int64 positions in image 1; pos2: (N, 2) float in image 2.
    """
    c, h, w = f1.shape
    p2 = pos2.round().long()
    s1 = soft_detection(f1[None])[0][pos1[:, 0], pos1[:, 1]]
    s2 = soft_detection(f2[None])[0][p2[:, 0], p2[:, 1]]
    all1, all2 = F.normalize(f1.reshape(c, -1), dim=0), F.normalize(f2.reshape(c, -1), dim=0)
    d1 = all1[:, pos1[:, 0] * w + pos1[:, 1]].T
    d2 = F.normalize(sample(f2, pos2), dim=1)
    positive = 2 - 2 * (d1 * d2).sum(dim=1)

    def hardest(desc: torch.Tensor, others: torch.Tensor, center: torch.Tensor) -> torch.Tensor:
        return (2 - 2 * desc @ others + 10.0 * near_mask(center, h, w, safe_radius)).min(dim=1)[0]

    negative = torch.minimum(hardest(d1, all2, p2), hardest(d2, all1, pos1))
    weight = s1 * s2
    return (weight * F.relu(margin + positive - negative)).sum() / weight.sum()


def info_nce_loss(f1: torch.Tensor, f2: torch.Tensor, pos1: torch.Tensor, pos2: torch.Tensor,
                  exclusion_radius: int | None = None, detection_weighted: bool = False,
                  temperature: float = 0.1) -> torch.Tensor:
    """Symmetric InfoNCE of one image pair: each descriptor at a correspondence must pick its true match
    (cross-entropy of cosine / ``temperature``) among

    - the N matched descriptors of the other image (``exclusion_radius`` None), or
    - every pixel of the other image (dense), except those within ``exclusion_radius`` pixels (Chebyshev) of the
      true match, which itself is the pixel nearest to it.

    The two directions' cross-entropies are averaged per correspondence, then over the correspondences: plainly,
    or with ``detection_weighted`` (dense only) with weights s1 * s2 (``soft_detection`` at the two ends), as
    D2-Net weights its loss, which trains the detector to fire where descriptors match.

    A collapsed network (one descriptor everywhere) costs log N (log H W) here, whereas D2-Net's loss rates it
    at the margin and pulls a randomly initialised network there (``rapnet_loc.rapnet.train``).

    Args:
        f1, f2: (C, H, W) dense features; pos1: (N, 2) int64 positions in image 1; pos2: (N, 2) float in image 2.
    """
    c, h, w = f1.shape
    d1 = F.normalize(f1[:, pos1[:, 0], pos1[:, 1]].T, dim=1)
    d2 = F.normalize(sample(f2, pos2), dim=1)
    if exclusion_radius is None:
        logits = d1 @ d2.T / temperature
        target = torch.arange(len(d1), device=d1.device)
        return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2
    p2 = pos2.round().long()

    def dense(desc: torch.Tensor, other: torch.Tensor, center: torch.Tensor) -> torch.Tensor:
        target = center[:, 0] * w + center[:, 1]
        logits = desc @ F.normalize(other.reshape(c, -1), dim=0) / temperature
        excluded = near_mask(center, h, w, exclusion_radius)
        excluded[torch.arange(len(center)), target] = False
        return F.cross_entropy(logits.masked_fill(excluded, float('-inf')), target, reduction='none')
    loss = (dense(d1, f2, p2) + dense(d2, f1, pos1)) / 2
    if not detection_weighted:
        return loss.mean()
    weight = soft_detection(f1[None])[0][pos1[:, 0], pos1[:, 1]] * soft_detection(f2[None])[0][p2[:, 0], p2[:, 1]]
    return (weight * loss).sum() / weight.sum()


def peak_alignment_loss(f1: torch.Tensor, f2: torch.Tensor, warp: torch.Tensor, radius: int = NMS_RADIUS,
                        temperature: float = 0.1) -> torch.Tensor | None:
    """Repeatability of the hard detections of image 1 in image 2.

    Each D2-Net hard detection (c, p) of ``f1`` (no gradient through the detection itself) whose true position q
    in image 2 (``warp``) has a full (2 ``radius`` + 1)^2 window inside ``f2`` gives two terms:

    - position: the soft-argmax of channel c of ``f2`` over the window around round(q) (softmax of F /
      (``temperature`` * window max)) should be q: squared error over radius^2;
    - channel: c should be the maximal channel of ``f2`` at round(q): cross-entropy of F[:, q] / (``temperature`` *
      its max) with target c.

    Both are averaged over the detections. Together they ask the detection of image 2 to fire at the same point
    and channel, which the descriptor losses leave free (they see only normalised descriptors).

    Args:
        f1, f2: (C, H, W) dense features; warp: (H, W, 2) float (i, j) position in image 2 of each pixel of
            image 1, NaN where unknown.
    Returns:
        The scalar loss, or None when no detection qualifies.
    """
    _, h, w = f2.shape
    ij, _ = hard_detection(f1.detach())
    q = warp[ij[:, 0], ij[:, 1]]
    centre = q.round().long()
    ok = torch.isfinite(q).all(dim=1) & (centre >= radius).all(dim=1) & (centre[:, 0] < h - radius) & (
        centre[:, 1] < w - radius)
    if not ok.any():
        return None
    ij, q, centre = ij[ok], q[ok], centre[ok]
    channel = f1.detach()[:, ij[:, 0], ij[:, 1]].argmax(dim=0)
    step = torch.arange(-radius, radius + 1, device=f2.device)
    rows = (centre[:, 0, None] + step).view(-1, 2 * radius + 1, 1)
    cols = (centre[:, 1, None] + step).view(-1, 1, 2 * radius + 1)
    window = f2[channel.view(-1, 1, 1), rows, cols].flatten(1)
    scale = temperature * window.detach().amax(dim=1, keepdim=True).clamp_min(1e-6)
    weight = torch.softmax(window / scale, dim=1)
    offsets = torch.stack(torch.meshgrid(step, step, indexing='ij'), dim=-1).view(-1, 2).to(f2.dtype)
    predicted = centre.to(f2.dtype) + weight @ offsets
    position = ((predicted - q.to(f2.dtype)) ** 2).sum(dim=1) / radius ** 2
    at_q = f2[:, centre[:, 0], centre[:, 1]].T
    logits = at_q / (temperature * at_q.detach().amax(dim=1, keepdim=True).clamp_min(1e-6))
    return position.mean() + F.cross_entropy(logits, channel)


def detection_map(features: torch.Tensor, window: int = LOCAL_MAX_SIZE, temperature: float = 0.02) -> torch.Tensor:
    """A sharp, differentiable stand-in for the hard detection, in [0, 1]: (B, C, H, W) -> (B, H, W).

    S(i, j) = sum_c softmax_c(F[:, i, j] / (T max_c F[:, i, j]))_c * exp((F_c(i, j) / M_c(i, j) - 1) / T), with
    M_c the ``window`` x ``window`` local maximum of channel c and T = ``temperature``: 1 where a channel is both
    the pixel's largest and the local maximum of its own map, as in the hard detection, and falling off fast
    elsewhere. D2-Net's ``soft_detection`` is almost flat (its local softmax sees F / max F, in [0, 1], at
    temperature 1), so it cannot carry a repeatability loss.
    """
    features = F.relu(features)
    depth_wise = torch.softmax(features / (temperature * features.amax(dim=1, keepdim=True).clamp_min(1e-6)), dim=1)
    local_max = F.max_pool2d(features, window, 1, window // 2).clamp_min(1e-6)
    return (depth_wise * torch.exp((features / local_max - 1) / temperature)).sum(dim=1)


def cosim_repeatability_loss(f1: torch.Tensor, f2: torch.Tensor, warp: torch.Tensor, patch: int = 8,
                             peaky_weight: float = 1.0) -> torch.Tensor | None:
    """R2D2's repeatability loss on the sharp detection map S (``detection_map``).

    Image 2's map, warped into image 1, should match image 1's patch by patch: 1 - cosine similarity of ``patch``
    x ``patch`` patches (stride ``patch`` / 2) over the patches at least half covered by the warp, weighted by
    the larger of the two patches' maxima (S is near 0 away from detections, where the cosine means nothing).
    Each map should also be peaky: 1 - mean of its local max minus local mean over (``patch`` + 1)^2 windows,
    times ``peaky_weight``.

    Args:
        f1, f2: (C, H, W) dense features; warp: (H, W, 2) float (i, j) position in image 2 of each pixel of
            image 1, NaN where unknown.
    Returns:
        The scalar loss, or None when no patch is covered.
    """
    s = detection_map(torch.stack([f1, f2]))
    h, w = s.shape[1:]
    valid = torch.isfinite(warp).all(dim=2)
    ij = torch.nan_to_num(warp, nan=0.0).view(-1, 2).to(s.dtype)
    s2 = sample(s[1:2], ij).view(h, w) * valid
    s1 = s[0] * valid
    unfold = torch.nn.Unfold(patch, stride=patch // 2)
    p1, p2 = unfold(s1[None, None])[0], unfold(s2[None, None])[0]
    covered = unfold(valid[None, None].to(s.dtype))[0].mean(dim=0) >= 0.5
    if not covered.any():
        return None
    p1, p2 = p1[:, covered], p2[:, covered]
    cos = F.cosine_similarity(p1, p2, dim=0, eps=1e-8)
    weight = torch.maximum(p1.amax(dim=0), p2.amax(dim=0)).detach()
    pad = patch // 2
    peak = F.max_pool2d(s[:, None], patch + 1, 1, pad) - F.avg_pool2d(s[:, None], patch + 1, 1, pad,
                                                                       count_include_pad=False)
    return (weight * (1 - cos)).sum() / weight.sum().clamp_min(1e-6) + peaky_weight * (1 - peak.mean())


def global_descriptor(features: torch.Tensor, region: torch.Tensor) -> torch.Tensor:
    """Region-weighted global descriptor g = sum_pixels R * F, L2-normalised: (B, C, H, W), (B, H, W) -> (B, C)."""
    return F.normalize((features * region[:, None]).sum(dim=(2, 3)), dim=1)


def ratio_loss(anchor: torch.Tensor, positive: torch.Tensor, negatives: torch.Tensor) -> torch.Tensor:
    """RaP-Net's ratio loss with in-triplet hard negative mining, averaged over T tuples.

    d_an and d_pn are the mean distances of anchor and positive to the negatives; anchor and positive swap when
    d_an > d_pn, so d_an = min(d_an, d_pn). With e_ap = exp(d_ap), e_an = exp(d_an):
    L = (e_ap / (e_ap + e_an))^2 + (1 - e_an / (e_ap + e_an))^2.

    Args:
        anchor, positive: (T, D) descriptors; negatives: (T, N, D).
    """
    d_ap = (anchor - positive).norm(dim=1)
    d_an = (anchor[:, None] - negatives).norm(dim=2).mean(dim=1)
    d_pn = (positive[:, None] - negatives).norm(dim=2).mean(dim=1)
    d_an = torch.minimum(d_an, d_pn)
    e_ap, e_an = d_ap.exp(), d_an.exp()
    return ((e_ap / (e_ap + e_an)) ** 2 + (1 - e_an / (e_ap + e_an)) ** 2).mean()
