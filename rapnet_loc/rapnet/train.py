"""RaP-Net training on posed RGB-D frames (7-Scenes layout, one or several folders), in the authors' two stages.

- ``base``: the base net with D2-Net's loss (``losses.d2_triplet_loss``) or InfoNCE (``losses.info_nce_loss``) on
  pixel correspondences between two frames of the sequence (from depth and poses), optionally on crops
  (``data.crop_pair``). Writes ``OUT/rapnet_wNNN_base.pt`` (base net only).
- ``region``: the region head, base net frozen (``init`` from the base stage or any RaP-Net/D2-Net weights),
  with the ratio loss (``losses.ratio_loss``) on region-weighted global descriptors of (anchor, positive,
  negatives) tuples drawn from place labels (``data.location_labels``). Writes ``OUT/rapnet_wNNN.pt``. With
  ``backbone='xfeat'`` the head learns on XFeat's frozen pretrained map instead (the region weighting of other
  extractors, ``rapnet_loc.features.region``) and is written alone as ``OUT/region_xfeat.pt``.

Training is resumable: ``OUT/train_state.pt`` holds the model, the optimiser, the step, the random generators'
states and the loss history, written every ``checkpoint_every`` steps; ``resume=True`` continues from it and gives
the same result as an uninterrupted run. ``OUT/losses.csv`` lists the loss of every step.

With several folders (sources), each base-stage pair is drawn from one source, chosen in proportion to its frame
count; locations are labelled per source, so a tuple's negatives may come from any source.
"""
from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from rapnet_loc.errors import ConfigError, DatasetError
from rapnet_loc.features.region import REGION_FILE, new_region_head, save_region_head
from rapnet_loc.features.xfeat import XFeatNetwork, network_input
from rapnet_loc.rapnet.data import (TrainFrame, correspondences, crop_pair, load_frames, location_labels,
                                   sample_tuple)
from rapnet_loc.rapnet.losses import (cosim_repeatability_loss, d2_triplet_loss, global_descriptor, info_nce_loss,
                                     peak_alignment_loss, ratio_loss)
from rapnet_loc.rapnet.model import RapNet
from rapnet_loc.rapnet.preprocess import IMAGENET_MEAN, IMAGENET_STD
from rapnet_loc.rapnet.weights import default_weights_name, load_model, random_model, save_weights
from rapnet_loc.training import load_state, save_state

LOG = logging.getLogger(__name__)
STAGES = ('base', 'region')
BACKBONES = ('rapnet', 'xfeat')
GREY_WEIGHTS = np.array([0.299, 0.587, 0.114], np.float32)     # OpenCV's RGB -> grey, as ``features.base.to_gray``
BASE_LOSSES = ('d2', 'nce', 'dense-nce', 'd2-nce')
REPEAT_LOSSES = {'peak': peak_alignment_loss, 'cosim': cosim_repeatability_loss}
LEARNING_RATES = {'base': 1e-4, 'region': 1e-3}   # base: 1e-3 collapses the descriptors when training from scratch
STATE_FILE = 'train_state.pt'
MIN_CORRESPONDENCES = 16
_PAIR_TRIES = 20
_CROP_OVERSAMPLE = 4     # correspondences drawn over the whole image per one kept inside the crops
POOL_CONTEXT = 17        # shrunk-image pixels around a crop in the smaller runs: the net's receptive radius (16) + 1


@dataclass
class TrainConfig:
    """Training options (``rapnet-loc train-rapnet`` flags of the same names).

    Attributes:
        data, out: 7-Scenes-style frame folder, or a list of them (sources); output folder.
        stage: ``'base'`` or ``'region'``; init: weights to start from (required for ``region`` on RaP-Net).
        backbone: region stage: the frozen map the head learns on, ``'rapnet'`` (the base net of ``init``) or
            ``'xfeat'`` (XFeat's pretrained descriptor map; ``init`` and ``width`` unused).
        width, max_edge: network width multiplier; longer edge of the training images.
        first, last, stride: frames used in each source (file numbers, inclusive) and the step between them.
        steps, lr, seed, checkpoint_every: optimisation (Adam; lr None: the stage's ``LEARNING_RATES``).
        loss: base stage: ``'d2'`` (D2-Net's loss), ``'nce'``, ``'dense-nce'`` or ``'d2-nce'``
            (``losses.info_nce_loss`` with the other correspondences, or every pixel farther than ``safe_radius``
            as negatives; ``d2-nce`` weights that by D2-Net's soft detection scores, as D2-Net does). D2-Net's loss
            collapses the descriptors of a network trained from scratch (every descriptor alike); InfoNCE does not.
        max_gap, crop, correspondences, margin, safe_radius: base stage: pairs are at most ``max_gap`` used frames
            apart; both images are cut to ``crop`` x ``crop`` windows around the correspondences (0: whole
            images); correspondences per pair; triplet margin (d2); negatives' exclusion radius in pixels (d2,
            dense-nce, d2-nce).
        repeat_weight, repeat_loss: base stage: weight of a repeatability loss added to the descriptor loss (0
            leaves it out): ``'peak'`` (``losses.peak_alignment_loss``, hard detections must reappear at their
            true position and channel) or ``'cosim'`` (``losses.cosim_repeatability_loss``, R2D2's loss on a
            sharp soft detection map). It needs every correspondence of the pair (a dense warp), so the
            descriptor loss then draws its ``correspondences`` from those.
        descriptor_scales: base stage: factors in (0, 1] (the extractor option of the same name): the pair's
            whole images are also run at these fractions of their size, as the extractor runs them, the maps are
            sampled on the pair's (cropped) pixel grid and summed (``pooled_maps``), and InfoNCE over every
            pixel farther than ``safe_radius`` (not detection-weighted: the pooled map detects nothing) on that sum
            is added to the loss on F. Empty: F alone.
        pool_safe_radius: base stage with ``descriptor_scales``: the exclusion radius (pixels of the training
            images) of that InfoNCE; None: ``safe_radius``. The pooled maps are smooth at the scale of their
            smallest run (a pixel of a quarter-size run spans 4), so a negative 2 px from the true match is nearly
            the match itself; the extractor's keypoints are never closer than its NMS box (4 px with the authors'
            9x9 box).
        tuples, negatives, loc_distance, loc_angle: region stage: tuples per step, negatives per tuple, location
            thresholds (metres, degrees).
        positive_gap: region stage: anchor and positive are at least this many used frames apart (1: any two
            frames of the place). Frames close in time share what moves through them (people), which the head
            then learns to weight up: a gap that reaches another sequence or a later revisit makes only the
            lasting parts of the place common to both.
        region_spread: region stage: None (the authors'): the ratio loss alone. A number: adds the squared
            difference between each image's standard deviation of R and it. The ratio loss cannot see R's scale
            (g is normalised), yet exp(R - mean R) in the keypoint score can: without this, R's spread drifts
            with training and can outweigh P entirely.
    """

    data: str | list[str]
    out: str
    stage: str = 'base'
    backbone: str = 'rapnet'
    init: str | None = None
    width: float = 0.25
    max_edge: int = 160
    first: int = 0
    last: int = 299
    stride: int = 5
    steps: int = 100
    lr: float | None = None
    seed: int = 0
    checkpoint_every: int = 25
    loss: str = 'd2'
    max_gap: int = 3
    crop: int = 0
    correspondences: int = 256
    margin: float = 1.0
    safe_radius: int = 4
    repeat_weight: float = 0.0
    repeat_loss: str = 'peak'
    descriptor_scales: list[float] = dataclasses.field(default_factory=list)
    pool_safe_radius: int | None = None
    tuples: int = 1
    negatives: int = 4
    loc_distance: float = 0.3
    loc_angle: float = 20.0
    positive_gap: int = 1
    region_spread: float | None = None


@dataclass
class TrainResult:
    """Losses of every step (resumed steps included), the weights written and the training state file."""

    losses: list[float]
    weights: Path
    state: Path


def _model(cfg: TrainConfig) -> tuple[RapNet, list[torch.nn.Parameter]]:
    """The model to train and the parameters the stage optimises (seeded initialisation)."""
    if cfg.stage == 'region' and not cfg.init:
        raise ConfigError('the region stage trains the region head on a trained base net: give --init (the base '
                          'stage\'s rapnet_wNNN_base.pt, or other RaP-Net weights)')
    if cfg.init:
        model, info = load_model(cfg.init, cfg.width)
        if info.preprocessing != 'torch':
            raise ConfigError(f'--init {cfg.init} expects {info.preprocessing} preprocessing; training feeds '
                              f'"torch"-normalised images (D2-Net weights cannot start training here)')
    else:
        model = random_model(cfg.width, cfg.seed, region=False)[0]
    if cfg.stage == 'base':
        model.region = None
        return model.train(), list(model.backbone.parameters())
    if model.region is None:
        model.region = random_model(cfg.width, cfg.seed)[0].region
    model.backbone.requires_grad_(False)
    return model.train(), list(model.region.parameters())


def _sources(cfg: TrainConfig) -> list[list[TrainFrame]]:
    """The training frames of each source folder."""
    folders = [cfg.data] if isinstance(cfg.data, str) else list(cfg.data)
    return [load_frames(folder, cfg.first, cfg.last, cfg.stride, cfg.max_edge) for folder in folders]


def _place_labels(sources: list[list[TrainFrame]], cfg: TrainConfig) -> np.ndarray:
    """(N,) location labels of the frames of all sources in order, distinct across sources."""
    labels, offset = [], 0
    for frames in sources:
        labels.append(location_labels(np.array([f.T_wc for f in frames]), cfg.loc_distance, cfg.loc_angle) + offset)
        offset = labels[-1].max() + 1
    return np.concatenate(labels)


def pooled_maps(backbone: torch.nn.Module, images: torch.Tensor, corners: torch.Tensor, size: tuple[int, int],
                scales: list[float]) -> torch.Tensor:
    """Sum over ``scales`` of the backbone's maps of whole images shrunk by each factor (area interpolation, as the
    extractor shrinks images), sampled bilinearly on the pixel grid of a window of each image with pixel centres
    aligned and positions clipped to the map (as ``detect.pooled_descriptors`` samples them).

    The net runs only on the part of each shrunk image around the window (``POOL_CONTEXT`` pixels beyond it on
    every side), which gives the window the values of a run on the whole shrunk image at a fraction of the cost.

    Args:
        images: (B, 3, H, W) whole images; corners: (B, 2) int64 (row, column) of each window's top-left pixel;
            size: the windows' (h, w).
    Returns:
        (B, C, h, w).
    """
    shape, window = torch.tensor(images.shape[2:]), torch.tensor(size)
    total = 0
    for s in scales:
        small = F.interpolate(images, size=[max(1, round(float(n) * s)) for n in shape], mode='area')
        factor = torch.tensor(small.shape[2:]) / shape                            # shrunk pixels per pixel
        extent = torch.minimum(torch.tensor(small.shape[2:]),
                               torch.ceil(window * factor).long() + 2 * (POOL_CONTEXT + 2))
        at = [(corner[:, None] + torch.arange(n) + 0.5) * k - 0.5 for n, k, corner in zip(size, factor, corners.T)]
        starts = torch.stack([torch.clamp(torch.floor(a[:, 0]).long() - POOL_CONTEXT, min=0).minimum(m - e)
                              for a, m, e in zip(at, small.shape[2:], extent)], 1)             # (B, 2)
        parts = torch.stack([img[:, r:r + extent[0], c:c + extent[1]] for img, (r, c) in zip(small, starts.tolist())])
        rows, cols = ((a - start[:, None] + 0.5) / e * 2 - 1 for a, start, e in zip(at, starts.T, extent))
        grid = torch.stack(torch.broadcast_tensors(cols[:, None, :], rows[:, :, None]), -1).float()   # (B, h, w, 2)
        total = total + F.grid_sample(backbone(parts), grid, mode='bilinear', padding_mode='border',
                                      align_corners=False)
    return total


def _base_loss(model: RapNet, sources: list[list[TrainFrame]], cfg: TrainConfig,
               rng: np.random.Generator) -> torch.Tensor:
    sizes = np.array([len(frames) for frames in sources])
    dense = cfg.repeat_weight > 0
    for _ in range(_PAIR_TRIES):
        frames = sources[int(rng.choice(len(sources), p=sizes / sizes.sum()))]
        a = int(rng.integers(len(frames)))
        b = int(np.clip(a + rng.choice([-1, 1]) * rng.integers(1, cfg.max_gap + 1), 0, len(frames) - 1))
        if a == b:
            continue
        wanted = frames[a].depth.size if dense else cfg.correspondences
        pos1, pos2 = correspondences(frames[a], frames[b], wanted * (_CROP_OVERSAMPLE if cfg.crop else 1), rng)
        image1, image2, corners = frames[a].image, frames[b].image, np.zeros((2, 2), np.int64)
        if cfg.crop and len(pos1):
            image1, image2, pos1, pos2, corners = crop_pair(frames[a], frames[b], pos1, pos2, cfg.crop, wanted, rng)
        if len(pos1) >= MIN_CORRESPONDENCES:
            break
    else:
        raise DatasetError(f'found no frame pair with {MIN_CORRESPONDENCES} depth correspondences in '
                           f'{_PAIR_TRIES} tries: check the depth images and poses of {cfg.data}')
    images = torch.from_numpy(np.concatenate([image1, image2]))
    f = model.backbone(images)
    warp = None
    if dense:
        warp = torch.full(f.shape[2:] + (2,), float('nan'), dtype=torch.float64)
        warp[pos1[:, 0], pos1[:, 1]] = torch.from_numpy(pos2)
        pick = np.sort(rng.choice(len(pos1), min(len(pos1), cfg.correspondences), replace=False))
        pos1, pos2 = pos1[pick], pos2[pick]
    pos1, pos2 = torch.from_numpy(pos1), torch.from_numpy(pos2)
    if cfg.loss != 'd2':
        loss = info_nce_loss(f[0], f[1], pos1, pos2, None if cfg.loss == 'nce' else cfg.safe_radius,
                             cfg.loss == 'd2-nce')
    else:
        loss = d2_triplet_loss(f[0], f[1], pos1, pos2, cfg.margin, cfg.safe_radius)
    if cfg.descriptor_scales:
        whole = torch.from_numpy(np.concatenate([frames[a].image, frames[b].image]))
        pooled = pooled_maps(model.backbone, whole, torch.from_numpy(corners), f.shape[2:], cfg.descriptor_scales)
        radius = cfg.safe_radius if cfg.pool_safe_radius is None else cfg.pool_safe_radius
        loss = loss + info_nce_loss(pooled[0], pooled[1], pos1, pos2, radius)
    repeat = REPEAT_LOSSES[cfg.repeat_loss](f[0], f[1], warp) if dense else None
    return loss if repeat is None else loss + cfg.repeat_weight * repeat


def _base_features(model: RapNet, frames: list[TrainFrame], progress: bool) -> list[torch.Tensor]:
    """F of every frame under the frozen base net, (C, H, W) float16 each (the region stage's input; computed once
    instead of at every step: 180 frames at 320x240 and width 0.25 take 3.5 GB)."""
    with torch.no_grad():
        return [model.backbone(torch.from_numpy(f.image))[0].half()
                for f in tqdm(frames, desc='base features', disable=not progress)]


def _xfeat_features(frames: list[TrainFrame], progress: bool) -> list[torch.Tensor]:
    """XFeat's descriptor map of every frame, (64, h/8, w/8) float16 each, computed as the extractors compute it
    (the frame's colour made grey, the sides cut to multiples of 32)."""
    network = XFeatNetwork('cpu', 'backbone rapnet')
    maps = []
    for f in tqdm(frames, desc='xfeat features', disable=not progress):
        rgb = f.image[0].transpose(1, 2, 0) * IMAGENET_STD + IMAGENET_MEAN
        grey = np.clip(np.rint(255 * rgb @ GREY_WEIGHTS), 0, 255).astype(np.uint8)
        maps.append(network(network_input(grey, max(grey.shape))[0])[0][0].half())
    return maps


def _region_loss(head: torch.nn.Module, features: list[torch.Tensor], labels: np.ndarray, cfg: TrainConfig,
                 rng: np.random.Generator) -> torch.Tensor:
    index = np.concatenate([sample_tuple(labels, rng, cfg.negatives, cfg.positive_gap) for _ in range(cfg.tuples)])
    f = torch.stack([features[k] for k in index]).float()
    region = head(f)
    g = global_descriptor(f, region).view(cfg.tuples, 2 + cfg.negatives, -1)
    loss = ratio_loss(g[:, 0], g[:, 1], g[:, 2:])
    if cfg.region_spread is None:
        return loss
    return loss + ((region.flatten(1).std(dim=1) - cfg.region_spread) ** 2).mean()


def _save_state(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, step: int, losses: list[float],
                rng: np.random.Generator, cfg: TrainConfig) -> None:
    save_state(path, {'model': model.state_dict(), 'optimizer': optimizer.state_dict(), 'step': step,
                      'losses': losses, 'numpy_rng': rng.bit_generator.state, 'torch_rng': torch.get_rng_state()},
               cfg, path.with_name('losses.csv'))


def _resume(path: Path, cfg: TrainConfig, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
            rng: np.random.Generator) -> tuple[int, list[float]]:
    """Restore ``path`` into model, optimiser and generators; the step reached and the losses so far."""
    state = load_state(path, cfg, ('steps', 'checkpoint_every'))
    model.load_state_dict(state['model'])
    optimizer.load_state_dict(state['optimizer'])
    rng.bit_generator.state = state['numpy_rng']
    torch.set_rng_state(state['torch_rng'])
    return int(state['step']), list(state['losses'])


def train(cfg: TrainConfig, resume: bool = False, progress: bool = True) -> TrainResult:
    """Run (or, with ``resume``, continue) one training stage; write the training state and the weights."""
    if cfg.stage not in STAGES:
        raise ConfigError(f'unknown training stage {cfg.stage!r}; expected one of {", ".join(STAGES)}')
    if cfg.backbone not in BACKBONES:
        raise ConfigError(f'unknown backbone {cfg.backbone!r}; expected one of {", ".join(BACKBONES)}')
    xfeat = cfg.backbone == 'xfeat'
    if xfeat and (cfg.stage != 'region' or cfg.init):
        raise ConfigError('--backbone xfeat trains a region head on XFeat\'s pretrained network: use it with '
                          '--stage region and without --init')
    if cfg.loss not in BASE_LOSSES:
        raise ConfigError(f'unknown base-stage loss {cfg.loss!r}; expected one of {", ".join(BASE_LOSSES)}')
    if not all(0 < s <= 1 for s in cfg.descriptor_scales):
        raise ConfigError(f'descriptor scales must lie in (0, 1], got {cfg.descriptor_scales}')
    if min(cfg.pool_safe_radius or 0, cfg.region_spread or 0) < 0:
        raise ConfigError(f'pool_safe_radius and region_spread must be >= 0, got {cfg.pool_safe_radius} and '
                          f'{cfg.region_spread}')
    if cfg.repeat_loss not in REPEAT_LOSSES:
        raise ConfigError(f'unknown repeatability loss {cfg.repeat_loss!r}; expected one of {", ".join(REPEAT_LOSSES)}')
    out = Path(cfg.out)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    sources = _sources(cfg)
    frames = [f for source in sources for f in source]
    labels = None
    if cfg.stage == 'region':
        labels = _place_labels(sources, cfg)
        LOG.info('%d frames in %d locations', len(frames), labels.max() + 1)
    if xfeat:
        model = new_region_head(cfg.seed).train()
        params, features = list(model.parameters()), _xfeat_features(frames, progress)
    else:
        model, params = _model(cfg)
        features = None if labels is None else _base_features(model, frames, progress)
    optimizer = torch.optim.Adam(params, lr=cfg.lr or LEARNING_RATES[cfg.stage])
    state_path, step, losses = out / STATE_FILE, 0, []
    if resume and state_path.is_file():
        step, losses = _resume(state_path, cfg, model, optimizer, rng)
        if step > cfg.steps:
            raise ConfigError(f'cannot resume {state_path} at step {step} with --steps {cfg.steps}: give {step} to '
                              f'stop there, or more')
        LOG.info('resuming from %s at step %d', state_path, step)
    bar = tqdm(range(step, cfg.steps), initial=step, total=cfg.steps, desc=f'train {cfg.stage}', disable=not progress)
    for step in bar:
        loss = (_base_loss(model, sources, cfg, rng) if labels is None else
                _region_loss(model if xfeat else model.region, features, labels, cfg, rng))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        bar.set_postfix(loss=f'{losses[-1]:.4f}')
        if (step + 1) % cfg.checkpoint_every == 0 or step + 1 == cfg.steps:
            _save_state(state_path, model, optimizer, step + 1, losses, rng, cfg)
    meta = {'stage': cfg.stage, 'loss': cfg.loss if cfg.stage == 'base' else 'ratio', 'init': cfg.init,
            'steps': cfg.steps, 'data': str(cfg.data), 'frames': f'{cfg.first}-{cfg.last}',
            'max_edge': cfg.max_edge, 'seed': cfg.seed, 'final_loss': losses[-1] if losses else None}
    if xfeat:
        return TrainResult(losses, save_region_head(out / REGION_FILE, model.eval(), meta), state_path)
    name = default_weights_name(cfg.width).replace('.pt', '_base.pt' if cfg.stage == 'base' else '.pt')
    weights = save_weights(out / name, model.eval(), 'torch', meta)
    return TrainResult(losses, weights, state_path)
