"""RaP-Net training on posed RGB-D frames (7-Scenes layout), in the authors' two stages.

- ``base``: the base net with D2-Net's loss (``losses.d2_triplet_loss``) on pixel correspondences between two
  frames of the sequence (from depth and poses). Writes ``OUT/rapnet_wNNN_base.pt`` (base net only).
- ``region``: the region head, base net frozen (``init`` from the base stage or any RaP-Net/D2-Net weights),
  with the ratio loss (``losses.ratio_loss``) on region-weighted global descriptors of (anchor, positive,
  negatives) tuples drawn from place labels (``data.location_labels``). Writes ``OUT/rapnet_wNNN.pt``.

Training is resumable: ``OUT/train_state.pt`` holds the model, the optimiser, the step, the random generators'
states and the loss history, written every ``checkpoint_every`` steps; ``resume=True`` continues from it and gives
the same result as an uninterrupted run. ``OUT/losses.csv`` lists the loss of every step.
"""
from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from rapnet_loc.errors import ConfigError, DatasetError
from rapnet_loc.io.atomic import atomic_write
from rapnet_loc.rapnet.data import TrainFrame, correspondences, load_frames, location_labels, sample_tuple
from rapnet_loc.rapnet.losses import d2_triplet_loss, global_descriptor, ratio_loss
from rapnet_loc.rapnet.model import RapNet
from rapnet_loc.rapnet.weights import default_weights_name, load_model, random_model, save_weights

LOG = logging.getLogger(__name__)
STAGES = ('base', 'region')
LEARNING_RATES = {'base': 1e-4, 'region': 1e-3}   # base: 1e-3 collapses the descriptors when training from scratch
STATE_FILE = 'train_state.pt'
MIN_CORRESPONDENCES = 16
_PAIR_TRIES = 20


@dataclass
class TrainConfig:
    """Training options (``rapnet-loc train-rapnet`` flags of the same names).

    Attributes:
        data, out: 7-Scenes-style frame folder; output folder.
        stage: ``'base'`` or ``'region'``; init: weights to start from (required for ``region``).
        width, max_edge: network width multiplier; longer edge of the training images.
        first, last, stride: frames used (file numbers, inclusive) and the step between them.
        steps, lr, seed, checkpoint_every: optimisation (Adam; lr None: the stage's ``LEARNING_RATES``).
        max_gap, correspondences, margin, safe_radius: base stage: pairs are at most ``max_gap`` used frames
            apart; correspondences per pair; triplet margin; negatives' exclusion radius in pixels.
        tuples, negatives, loc_distance, loc_angle: region stage: tuples per step, negatives per tuple, location
            thresholds (metres, degrees).
    """

    data: str
    out: str
    stage: str = 'base'
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
    max_gap: int = 3
    correspondences: int = 256
    margin: float = 1.0
    safe_radius: int = 4
    tuples: int = 1
    negatives: int = 4
    loc_distance: float = 0.3
    loc_angle: float = 20.0


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


def _base_loss(model: RapNet, frames: list[TrainFrame], cfg: TrainConfig, rng: np.random.Generator) -> torch.Tensor:
    for _ in range(_PAIR_TRIES):
        a = int(rng.integers(len(frames)))
        b = int(np.clip(a + rng.choice([-1, 1]) * rng.integers(1, cfg.max_gap + 1), 0, len(frames) - 1))
        if a == b:
            continue
        pos1, pos2 = correspondences(frames[a], frames[b], cfg.correspondences, rng)
        if len(pos1) >= MIN_CORRESPONDENCES:
            break
    else:
        raise DatasetError(f'found no frame pair with {MIN_CORRESPONDENCES} depth correspondences in '
                           f'{_PAIR_TRIES} tries: check the depth images and poses of {cfg.data}')
    f = model.backbone(torch.from_numpy(np.concatenate([frames[a].image, frames[b].image])))
    return d2_triplet_loss(f[0], f[1], torch.from_numpy(pos1), torch.from_numpy(pos2), cfg.margin, cfg.safe_radius)


def _region_loss(model: RapNet, frames: list[TrainFrame], labels: np.ndarray, cfg: TrainConfig,
                 rng: np.random.Generator) -> torch.Tensor:
    index = np.concatenate([sample_tuple(labels, rng, cfg.negatives) for _ in range(cfg.tuples)])
    with torch.no_grad():
        features = model.backbone(torch.from_numpy(np.concatenate([frames[k].image for k in index])))
    g = global_descriptor(features, model.region(features)).view(cfg.tuples, 2 + cfg.negatives, -1)
    return ratio_loss(g[:, 0], g[:, 1], g[:, 2:])


def _save_state(path: Path, model: RapNet, optimizer: torch.optim.Optimizer, step: int, losses: list[float],
                rng: np.random.Generator, cfg: TrainConfig) -> None:
    state = {'model': model.state_dict(), 'optimizer': optimizer.state_dict(), 'step': step, 'losses': losses,
             'numpy_rng': rng.bit_generator.state, 'torch_rng': torch.get_rng_state(),
             'config': dataclasses.asdict(cfg)}
    with atomic_write(path, 'wb') as fh:
        torch.save(state, fh)
    with atomic_write(path.with_name('losses.csv')) as fh:
        fh.write('step,loss\n' + ''.join(f'{k + 1},{v:.6f}\n' for k, v in enumerate(losses)))


def _resume(path: Path, cfg: TrainConfig, model: RapNet, optimizer: torch.optim.Optimizer,
            rng: np.random.Generator) -> tuple[int, list[float]]:
    """Restore ``path`` into model, optimiser and generators; the step reached and the losses so far."""
    state = torch.load(path, map_location='cpu', weights_only=True)
    saved = state['config']
    fixed = [f.name for f in dataclasses.fields(TrainConfig) if f.name not in ('steps', 'checkpoint_every')]
    if changed := [k for k in fixed if saved.get(k) != getattr(cfg, k)]:
        raise ConfigError(f'cannot resume from {path}: it was trained with other ' + ', '.join(
            f'{k} ({saved.get(k)!r}, now {getattr(cfg, k)!r})' for k in changed))
    model.load_state_dict(state['model'])
    optimizer.load_state_dict(state['optimizer'])
    rng.bit_generator.state = state['numpy_rng']
    torch.set_rng_state(state['torch_rng'])
    return int(state['step']), list(state['losses'])


def train(cfg: TrainConfig, resume: bool = False, progress: bool = True) -> TrainResult:
    """Run (or, with ``resume``, continue) one training stage; write the training state and the weights."""
    if cfg.stage not in STAGES:
        raise ConfigError(f'unknown training stage {cfg.stage!r}; expected one of {", ".join(STAGES)}')
    out = Path(cfg.out)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    frames = load_frames(cfg.data, cfg.first, cfg.last, cfg.stride, cfg.max_edge)
    labels = None
    if cfg.stage == 'region':
        labels = location_labels(np.array([f.T_wc for f in frames]), cfg.loc_distance, cfg.loc_angle)
        LOG.info('%d frames in %d locations', len(frames), labels.max() + 1)
    model, params = _model(cfg)
    optimizer = torch.optim.Adam(params, lr=cfg.lr or LEARNING_RATES[cfg.stage])
    state_path, step, losses = out / STATE_FILE, 0, []
    if resume and state_path.is_file():
        step, losses = _resume(state_path, cfg, model, optimizer, rng)
        LOG.info('resuming from %s at step %d', state_path, step)
    bar = tqdm(range(step, cfg.steps), initial=step, total=cfg.steps, desc=f'train {cfg.stage}', disable=not progress)
    for step in bar:
        loss = (_base_loss(model, frames, cfg, rng) if labels is None else
                _region_loss(model, frames, labels, cfg, rng))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        bar.set_postfix(loss=f'{losses[-1]:.4f}')
        if (step + 1) % cfg.checkpoint_every == 0 or step + 1 == cfg.steps:
            _save_state(state_path, model, optimizer, step + 1, losses, rng, cfg)
    name = default_weights_name(cfg.width).replace('.pt', '_base.pt' if cfg.stage == 'base' else '.pt')
    meta = {'stage': cfg.stage, 'steps': cfg.steps, 'data': str(cfg.data), 'frames': f'{cfg.first}-{cfg.last}',
            'max_edge': cfg.max_edge, 'seed': cfg.seed, 'final_loss': losses[-1] if losses else None}
    weights = save_weights(out / name, model.eval(), 'torch', meta)
    return TrainResult(losses, weights, state_path)
