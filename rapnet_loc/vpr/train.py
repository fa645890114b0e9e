"""NetVLAD training (Arandjelovic et al., CVPR 2016) on posed frames in the 7-Scenes layout, for the ``netvlad`` and
``patchnetvlad`` place recognizers (``rapnet-loc train-netvlad``).

The backbone is frozen: every training frame's map (``NetVLADRecognizer.describe``, (C, 30, 40) float16) is
computed once and kept in ``OUT/backbone_maps.pt``, which a resumed or repeated run on the same frames reuses. Only
the NetVLAD pool is trained (centroids and the 1 x 1 soft-assignment convolution), from the k-means initialisation
a recognizer fits on a map (``NetVLADRecognizer.fit_clusters``).

- Places: poses stand in for the paper's GPS. A frame's positives are the frames within ``pos_distance`` metres
  and ``pos_angle`` degrees of it (0.5 m, 30 deg: the suite's VPR convention, as in ``benchmarks/bench_vpr.py``)
  and, in its own folder, at least ``min_gap`` file numbers away (60: 2 s at 30 Hz; nearer frames of the same pass
  are near-duplicates that the k-means pool already tells apart from every negative, and teach nothing). Its
  negatives are the frames farther than ``neg_distance`` or turned more than ``neg_angle`` (1 m or 60 deg, twice
  the positive thresholds: frames in between overlap partly and are neither). Frames of different folders are
  compared by pose with ``shared_frame`` (sequences of one scene, as 7-Scenes registers them); otherwise they are
  never positives and always negatives (folders are different places, as ``train-rapnet`` labels them).
- Tuples, mined as NetVLAD does: each step draws ``tuples`` anchors among the frames with a positive and at least
  ``negatives`` negatives; an anchor's positive is its nearest positive, its hard negatives the ``negatives``
  nearest of ``negative_pool`` negatives drawn at random, by the global VLAD vectors of every training frame under
  the pool as it was at the last refresh (every ``cache_every`` steps).
- Loss: the triplet margin loss on L2 distances of the global VLAD vectors (intra- and L2-normalised), margin
  sqrt(0.1), summed over each tuple's negatives and divided by ``tuples`` x ``negatives`` (NetVLAD divides by the
  batch's negatives); a hard negative farther than the positive by the margin adds nothing, as NetVLAD skips it.
- Optimiser: Adam at ``lr`` (NetVLAD's code offers it beside the paper's SGD; it needs no momentum or learning-rate
  schedule for these few parameters, whose scales differ: unit centroids, an assignment weight of norm alpha).

After training, the whitening is fitted on the global and 5 x 5 patch VLAD vectors of up to ``wpca_frames`` training
frames (``NetVLADRecognizer.fit_whitening``; P = ``num_pcs`` at most, fewer where the samples or K x C allow fewer)
and ``OUT/netvlad_<backbone>_k<K>.pt`` is written: ``{num_pcs, state_dict, backbone, clusters}`` with the authors'
key names (``pool.centroids``, ``pool.conv.weight``, ``WPCA.0.weight``, ``WPCA.0.bias``, and ``encoder.*`` for
``vgg16`` only, whose encoder here is random with a fixed seed); the recognizers' ``checkpoint`` option loads it.

Training is resumable: ``OUT/train_state.pt`` holds the pool, the optimiser, the step, the losses, the random
generator's state and the mining vectors, written every ``checkpoint_every`` steps; ``resume=True`` continues from
it and gives the same result as an uninterrupted run. ``OUT/losses.csv`` lists the loss of every step.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy.spatial.distance import cdist
from tqdm import tqdm

from rapnet_loc.errors import ConfigError, DatasetError
from rapnet_loc.io.atomic import atomic_write
from rapnet_loc.io.sevenscenes import SevenScenesFolder
from rapnet_loc.training import load_state, save_state
from rapnet_loc.vpr.base import View
from rapnet_loc.vpr.netvlad import NetVLADRecognizer
from rapnet_loc.vpr.netvlad_model import NetVLAD, vlad_normalise

STATE_FILE = 'train_state.pt'
MAPS_FILE = 'backbone_maps.pt'
# options that may change when a run is resumed: when it stops and what happens after training
RESUMABLE = ('steps', 'checkpoint_every', 'num_pcs', 'wpca_frames')


@dataclass
class NetVLADTrainConfig:
    """Training options (``rapnet-loc train-netvlad`` flags of the same names; see the module doc).

    Attributes:
        data, out: 7-Scenes-style frame folder with poses, or a list of them; output folder.
        backbone, clusters, num_pcs: the recognizers' options of the same names (num_pcs: at most).
        first, last, stride: frames used in each folder (file numbers, inclusive; last None: to the end) and the
            step between them.
        pos_distance, pos_angle: positives are within both (metres, degrees).
        min_gap: positives of the same folder are at least this many file numbers apart (and at least 1).
        shared_frame: the folders' poses share one world frame (sequences of one scene): frames of different
            folders are positives and negatives by pose, not all negatives.
        neg_distance, neg_angle: negatives are beyond either (metres, degrees).
        margin: triplet margin on L2 distances of normalised VLAD vectors.
        negatives, negative_pool: hard negatives per tuple, mined from this many random negatives.
        cache_every: steps between refreshes of the mining vectors.
        tuples, steps, lr, seed, checkpoint_every: tuples per step, optimisation (Adam), training state period.
        wpca_frames: the whitening is fitted on at most this many training frames (a random subset; their 5 x 5
            patch vectors are all held in memory while it is fitted, as when a recognizer fits on a map).
    """

    data: str | list[str]
    out: str
    backbone: str = 'xfeat'
    clusters: int = 16
    num_pcs: int = 4096
    first: int = 0
    last: int | None = None
    stride: int = 1
    pos_distance: float = 0.5
    pos_angle: float = 30.0
    min_gap: int = 60
    shared_frame: bool = False
    neg_distance: float = 1.0
    neg_angle: float = 60.0
    margin: float = 0.1 ** 0.5
    negatives: int = 10
    negative_pool: int = 100
    cache_every: int = 250
    tuples: int = 4
    steps: int = 1000
    lr: float = 1e-3
    seed: int = 0
    checkpoint_every: int = 50
    wpca_frames: int = 200


@dataclass
class NetVLADTrainResult:
    """Losses of every step (resumed steps included), the checkpoint written and the training state file."""

    losses: list[float]
    checkpoint: Path
    state: Path


@dataclass
class Source:
    """The frames used from one folder: ``indices`` (n,) file numbers and camera-to-world ``T_wc`` (n, 4, 4)."""

    folder: SevenScenesFolder
    indices: list[int]
    T_wc: np.ndarray


def _check(cfg: NetVLADTrainConfig) -> None:
    positive = ('clusters', 'num_pcs', 'stride', 'margin', 'negatives', 'cache_every', 'tuples', 'lr',
                'checkpoint_every', 'wpca_frames')
    if bad := [f'{name} {getattr(cfg, name)}' for name in positive if not getattr(cfg, name) > 0]:
        raise ConfigError(f'NetVLAD training options must be positive: {", ".join(bad)}')
    if cfg.negative_pool < cfg.negatives or cfg.steps < 0:
        raise ConfigError(f'NetVLAD training needs negative_pool >= negatives and steps >= 0, got negative_pool '
                          f'{cfg.negative_pool}, negatives {cfg.negatives}, steps {cfg.steps}')


def load_sources(cfg: NetVLADTrainConfig) -> list[Source]:
    """Every ``stride``-th frame of ``first``..``last`` of each folder, with its pose.

    Raises:
        DatasetError: a folder is missing, has no such frames, or lacks a pose file.
    """
    sources = []
    for path in [cfg.data] if isinstance(cfg.data, str) else cfg.data:
        folder = SevenScenesFolder(path, cfg.first, cfg.last)
        T_wc = folder.poses()[1][::cfg.stride]
        sources.append(Source(folder, folder.indices[::cfg.stride], T_wc))
    return sources


def pose_relations(T_wc: np.ndarray, cfg: NetVLADTrainConfig) -> tuple[np.ndarray, np.ndarray]:
    """Positives and negatives (N, N) bool among camera-to-world poses (N, 4, 4) by the thresholds alone."""
    distance = cdist(T_wc[:, :3, 3], T_wc[:, :3, 3])
    rotations = T_wc[:, :3, :3].reshape(len(T_wc), 9)
    angle = np.degrees(np.arccos(np.clip((rotations @ rotations.T - 1) / 2, -1, 1)))     # trace(Ra^T Rb)
    positives = (distance <= cfg.pos_distance) & (angle <= cfg.pos_angle)
    return positives, (distance > cfg.neg_distance) | (angle > cfg.neg_angle)


def frame_relations(sources: list[Source], cfg: NetVLADTrainConfig) -> tuple[np.ndarray, np.ndarray]:
    """Positives and negatives (N, N) bool among the frames of all folders in order (see the module doc)."""
    folder = np.repeat(np.arange(len(sources)), [len(s.indices) for s in sources])
    index = np.concatenate([s.indices for s in sources])
    same = folder[:, None] == folder[None]
    positives, negatives = pose_relations(np.concatenate([s.T_wc for s in sources]), cfg)
    positives &= ~same | (np.abs(index[:, None] - index[None]) >= max(cfg.min_gap, 1))     # never the frame itself
    if not cfg.shared_frame:
        positives &= same
        negatives |= ~same
    return positives, negatives


def tuple_anchors(positives: np.ndarray, negatives: np.ndarray, cfg: NetVLADTrainConfig) -> np.ndarray:
    """Frames that can anchor a tuple: with a positive and ``negatives`` negatives.

    Raises:
        DatasetError: none can.
    """
    anchors = np.flatnonzero(positives.any(1) & (negatives.sum(1) >= cfg.negatives))
    if not len(anchors):
        raise DatasetError(
            f'cannot form training tuples from {len(positives)} frames of {cfg.data} (frames {cfg.first}..'
            f'{"" if cfg.last is None else cfg.last}, stride {cfg.stride}): no frame has a positive (within '
            f'{cfg.pos_distance} m and {cfg.pos_angle} deg) and {cfg.negatives} negatives (farther than '
            f'{cfg.neg_distance} m or turned more than {cfg.neg_angle} deg); use more frames, other thresholds or '
            f'fewer negatives')
    return anchors


def _backbone_maps(recognizer: NetVLADRecognizer, sources: list[Source], out: Path, progress: bool) -> torch.Tensor:
    """(N, C, H, W) float16 backbone maps of the frames of all sources in order, from ``OUT/backbone_maps.pt`` when
    it holds those of the same backbone and frames (and written there otherwise)."""
    key = {'backbone': recognizer.conf['backbone'],
           'frames': [[str(s.folder.path.resolve()), i] for s in sources for i in s.indices]}
    path = out / MAPS_FILE
    if path.is_file():
        cached = torch.load(path, map_location='cpu', weights_only=True)
        if {name: cached[name] for name in key} == key:
            return cached['maps']
    wanted = {(s.folder.path, i) for s in sources for i in s.indices}
    bar = tqdm(total=len(wanted), desc='backbone maps', disable=not progress)
    maps = []
    for source in sources:
        for frame in source.folder:
            if (source.folder.path, frame.index) in wanted:
                maps.append(torch.from_numpy(recognizer.describe(View(None, frame.color))))
                bar.update()
    bar.close()
    maps = torch.stack(maps)
    with atomic_write(path, 'wb') as fh:
        torch.save({**key, 'maps': maps}, fh)
    return maps


def vlad_vectors(pool: NetVLAD, maps: torch.Tensor) -> torch.Tensor:
    """(B, D) global VLAD vectors of (B, C, H, W) maps: ``global_vlad(pool.residuals(maps))``, with the residuals
    summed as sum(a x) - c sum(a) instead of held as (B, K, C, H, W) (6 to 30 times faster with gradients)."""
    x = F.normalize(maps.float(), p=2, dim=1).flatten(2)                      # (B, C, HW)
    assign = F.softmax(pool.conv.weight[:, :, 0, 0] @ x, dim=1)                 # (B, K, HW)
    sums = assign @ x.transpose(1, 2) - assign.sum(2, keepdim=True) * pool.centroids
    return vlad_normalise(sums, pool.clusters)


def mining_vectors(pool: NetVLAD, maps: torch.Tensor, batch: int = 64) -> torch.Tensor:
    """(N, D) global VLAD vectors of (N, C, H, W) maps, without gradients."""
    with torch.no_grad():
        return torch.cat([vlad_vectors(pool, maps[i:i + batch]) for i in range(0, len(maps), batch)])


def mine_tuple(anchors: np.ndarray, positives: np.ndarray, negatives: np.ndarray, vectors: torch.Tensor,
               cfg: NetVLADTrainConfig, rng: np.random.Generator) -> np.ndarray:
    """(2 + negatives,) frame indices: a random anchor, its nearest positive and its hard negatives by the mining
    ``vectors`` (N, D) (see the module doc)."""
    a = int(rng.choice(anchors))
    pos = np.flatnonzero(positives[a])
    neg = np.flatnonzero(negatives[a])
    neg = rng.choice(neg, min(cfg.negative_pool, len(neg)), replace=False)
    distance = torch.linalg.vector_norm(vectors - vectors[a], dim=1).numpy()
    hard = neg[np.argsort(distance[neg], kind='stable')[:cfg.negatives]]
    return np.concatenate([[a, pos[np.argmin(distance[pos])]], hard])


def triplet_loss(pool: NetVLAD, maps: torch.Tensor, tuples: np.ndarray, margin: float) -> torch.Tensor:
    """Triplet margin loss of (T, 2 + n) tuples of frame indices (anchor, positive, n negatives), averaged over the
    T x n triplets."""
    vectors = vlad_vectors(pool, maps[torch.from_numpy(tuples.ravel())]).view(*tuples.shape, -1)
    n = tuples.shape[1] - 2
    return F.triplet_margin_loss(vectors[:, :1].expand(-1, n, -1).flatten(0, 1),
                                 vectors[:, 1:2].expand(-1, n, -1).flatten(0, 1), vectors[:, 2:].flatten(0, 1),
                                 margin=margin)


def _save_state(path: Path, pool: NetVLAD, optimizer: torch.optim.Optimizer, step: int, losses: list[float],
                rng: np.random.Generator, vectors: torch.Tensor, cfg: NetVLADTrainConfig) -> None:
    save_state(path, {'pool': pool.state_dict(), 'optimizer': optimizer.state_dict(), 'step': step, 'losses': losses,
                      'numpy_rng': rng.bit_generator.state, 'vectors': vectors}, cfg, path.with_name('losses.csv'))


def _resume(path: Path, cfg: NetVLADTrainConfig, pool: NetVLAD, optimizer: torch.optim.Optimizer,
            rng: np.random.Generator) -> tuple[int, list[float], torch.Tensor]:
    """Restore ``path`` into pool, optimiser and generator; the step reached, the losses so far and the mining
    vectors (``rapnet_loc.training.load_state`` checks that the run may continue from it)."""
    state = load_state(path, cfg, RESUMABLE)
    pool.load_state_dict(state['pool'])
    optimizer.load_state_dict(state['optimizer'])
    rng.bit_generator.state = state['numpy_rng']
    return int(state['step']), list(state['losses']), state['vectors']


def _write_checkpoint(recognizer: NetVLADRecognizer, cfg: NetVLADTrainConfig) -> Path:
    """Write ``OUT/netvlad_<backbone>_k<K>.pt`` (see the module doc) and return its path."""
    model = recognizer.model
    state = {key: value for key, value in model.state_dict().items()
             if cfg.backbone == 'vgg16' or not key.startswith('encoder.')}
    path = Path(cfg.out) / f'netvlad_{cfg.backbone}_k{cfg.clusters}.pt'
    with atomic_write(path, 'wb') as fh:
        torch.save({'num_pcs': model.num_pcs, 'state_dict': state, 'backbone': cfg.backbone,
                    'clusters': cfg.clusters}, fh)
    return path


def train_netvlad(cfg: NetVLADTrainConfig, resume: bool = False, progress: bool = True) -> NetVLADTrainResult:
    """Train (or, with ``resume``, continue training) the NetVLAD pool, fit the whitening and write the checkpoint.

    Raises:
        ConfigError: invalid options, or a training state that cannot be resumed with them.
        DatasetError: unreadable frames or poses, or frames that form no tuple.
    """
    _check(cfg)
    sources = load_sources(cfg)
    positives, negatives = frame_relations(sources, cfg)
    anchors = tuple_anchors(positives, negatives, cfg)
    recognizer = NetVLADRecognizer({'backbone': cfg.backbone, 'clusters': cfg.clusters, 'num_pcs': cfg.num_pcs,
                                    'seed': cfg.seed})
    maps = _backbone_maps(recognizer, sources, Path(cfg.out), progress)
    pool = recognizer.model.pool
    optimizer = torch.optim.Adam(pool.parameters(), lr=cfg.lr)
    rng = np.random.default_rng(cfg.seed)
    state_path = Path(cfg.out) / STATE_FILE
    if resume and state_path.is_file():
        step, losses, vectors = _resume(state_path, cfg, pool, optimizer, rng)
    else:
        recognizer.fit_clusters(list(maps.float()), rng)
        step, losses, vectors = 0, [], None
    bar = tqdm(range(step, cfg.steps), initial=step, total=cfg.steps, desc='train netvlad', disable=not progress)
    for step in bar:
        if step % cfg.cache_every == 0:
            vectors = mining_vectors(pool, maps)
        tuples = np.stack([mine_tuple(anchors, positives, negatives, vectors, cfg, rng) for _ in range(cfg.tuples)])
        loss = triplet_loss(pool, maps, tuples, cfg.margin)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        bar.set_postfix(loss=f'{losses[-1]:.4f}')
        if (step + 1) % cfg.checkpoint_every == 0 or step + 1 == cfg.steps:
            _save_state(state_path, pool, optimizer, step + 1, losses, rng, vectors, cfg)
    fit_rng = np.random.default_rng(cfg.seed)
    subset = np.sort(fit_rng.permutation(len(maps))[:cfg.wpca_frames])
    recognizer.fit_whitening([maps[i].float() for i in subset], fit_rng)
    return NetVLADTrainResult(losses, _write_checkpoint(recognizer, cfg), state_path)
