"""VS-Net training (Huang et al., CVPR 2021) on posed RGB-D frames in the 7-Scenes layout (``rapnet-loc train-vsnet``).

1. Frames: every ``stride``-th frame in the ``frames`` range of each source (OpenLORIS-style bags or 7-Scenes-style
   frame folders, ``rapnet_loc.io.source``), the colour image shrunk to ``image_width`` (aspect kept), the depth
   registered to it (``rapnet_loc.rapnet.data.register_depth`` where the source's depth is not aligned to colour),
   the colour intrinsics at that size and the camera-to-world pose: ``poses`` ``'gt'`` takes the source's ground
   truth, a TUM file (``rapnet-loc replay``'s ``trajectory.tum``, in the frame of the map that run built)
   camera poses interpolated at the frames' stamps; frames without a pose are skipped. The poses of all sources
   must share one world frame (one scene).
2. Scene landmarks from those frames (``rapnet_loc.landmarks.surface.build_landmarks``): the fused surface
   over-segmented into patches of about ``seed_resolution`` metres; a landmark is a surface point of its patch.
3. Targets on the network's output grid (stride ``VSNet.stride``; ``grid_intrinsics``): the label map of the
   patches rendered with z-buffer visibility and the unit directions to each pixel's landmark
   (``rapnet_loc.landmarks.targets``).
4. Loss: the prototype triplet loss on the segmentation embeddings plus ``vote_weight`` (3) times the masked L1 of
   the votes (``rapnet_loc.landmarks.network.vsnet_loss``); Adam at ``lr`` on batches of ``batch`` frames drawn at
   random, each with a random brightness / contrast change of up to ``jitter`` (0: none) and a random similarity
   warp (``warp_scale``, ``warp_rotation``, ``warp_shift``; zeros: none) of the image and of its targets (labels
   by nearest neighbour, directions turned with the image; pixels warped in from outside are ignored), so that the
   network sees the scene from more distances and camera rolls than the training path has.

The model file (``out``) holds ``{format, version, config, state_dict, landmarks, image_size}`` and is loaded by
``rapnet_loc.landmarks.vsnet.load_model`` (``weights_only``: tensors and plain values only). Training is resumable:
``OUT.train_state.pt`` (model, optimiser, step, losses, generators) is written every ``checkpoint_every`` steps
beside the model, with ``OUT.losses.csv``; ``resume=True`` continues from it and gives the same model as an
uninterrupted run. The landmarks are rebuilt from the same frames, deterministically.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from rapnet_loc.errors import ConfigError, DatasetError
from rapnet_loc.geometry import scaled_intrinsics
from rapnet_loc.io.atomic import atomic_write
from rapnet_loc.io.source import RGBDSource, open_source
from rapnet_loc.io.trajectory import interpolate_poses, read_tum
from rapnet_loc.io.types import RGBDFrame
from rapnet_loc.landmarks.network import VSNet, vsnet_loss
from rapnet_loc.landmarks.surface import SceneLandmarks, build_landmarks
from rapnet_loc.landmarks.targets import direction_map, render_labels
from rapnet_loc.rapnet.data import register_depth
from rapnet_loc.training import load_state, save_state
from rapnet_loc.vpr.backbones import resized

MODEL_FORMAT = 'rapnet_loc.vsnet'
MODEL_VERSION = 1
PAD = 32                # network inputs are padded to a multiple of this (the encoder's deepest stride)
# options that may change when a run is resumed: when it stops
RESUMABLE = ('steps', 'checkpoint_every')


@dataclass
class VSNetTrainConfig:
    """Training options (``rapnet-loc train-vsnet`` flags of the same names; see the module doc).

    Attributes:
        data, out: a source (bag or 7-Scenes-style frame folder), or a list of them (one scene); model file to
            write.
        poses: ``'gt'`` (each source's ground truth) or a TUM trajectory file of camera-to-world poses.
        backbone, embedding_dim: the network's (``rapnet_loc.landmarks.network.VSNet``).
        image_width: width the colour images are shrunk to, for training and for localization.
        frames, stride: range of each source (``FIRST:LAST``: 7-Scenes file numbers or seconds of a bag, either
            side may be empty; None: all) and the step between the frames used.
        voxel, seed_resolution, min_points, depth_max: scene landmarks (``surface.build_landmarks``).
        batch, steps, lr, seed, checkpoint_every: optimisation (Adam) and training state period. ``steps``
            4500 was chosen on the 7-Scenes dev split (BENCHMARKS.md, session 17: 2000 / 3300 / 4500 / 6000 steps
            localized 34 / 38 / 40 / 37 % of the queries); about 18 min on 2 CPU cores at the default size.
        vote_weight, margin, negatives: the loss (``network.vsnet_loss``).
        jitter: largest relative brightness and contrast change of a training image.
        warp_scale, warp_rotation, warp_shift: largest zoom factor - 1 (in or out), roll (degrees) and shift
            (share of the image size) of the random similarity warp of a training image.
    """

    data: str | list[str]
    out: str
    poses: str = 'gt'
    backbone: str = 'xfeat'
    embedding_dim: int = 24
    image_width: int = 320
    frames: str | None = None
    stride: int = 1
    voxel: float = 0.02
    seed_resolution: float = 0.12
    min_points: int = 30
    depth_max: float = 6.0
    batch: int = 4
    steps: int = 4500
    lr: float = 1e-3
    seed: int = 0
    checkpoint_every: int = 100
    vote_weight: float = 3.0
    margin: float = 0.5
    negatives: int = 2
    jitter: float = 0.2
    warp_scale: float = 0.25
    warp_rotation: float = 10.0
    warp_shift: float = 0.1


@dataclass
class PosedImage:
    """One training frame at training size: ``color`` (H, W, 3) uint8 RGB, ``depth`` (H, W) float32 metres
    registered to it (0: none), ``K`` (3, 3) at that size, camera-to-world ``T_wc`` (4, 4)."""

    color: np.ndarray
    depth: np.ndarray
    K: np.ndarray
    T_wc: np.ndarray


@dataclass
class VSNetTrainResult:
    """Losses of every step (resumed steps included), the model file and the training state file."""

    losses: list[float]
    model: Path
    state: Path
    num_landmarks: int


def image_size(width: int, height: int, image_width: int) -> tuple[int, int]:
    """(w, h) of a ``width`` x ``height`` image shrunk (or enlarged) to ``image_width`` columns, aspect kept."""
    return image_width, max(1, round(height * image_width / width))


def grid_shape(size: tuple[int, int], stride: int) -> tuple[int, int]:
    """(h, w) of the network's output grid for an input of ``size`` = (w, h)."""
    return -(-size[1] // stride), -(-size[0] // stride)


def posed_image(frame: RGBDFrame, T_wc: np.ndarray, source: RGBDSource, image_width: int) -> PosedImage:
    """``frame`` of ``source`` at training size, with its pose ``T_wc`` (4, 4)."""
    h, w = frame.color.shape[:2]
    size = image_size(w, h, image_width)
    scale = w / size[0]
    depth_K = (source.depth_camera or source.camera).K
    depth = register_depth(frame.depth, depth_K, source.camera.K, (size[1], size[0]), scale)
    return PosedImage(resized(frame.color, size), depth, scaled_intrinsics(source.camera.K, scale), T_wc)


def training_images(cfg: VSNetTrainConfig, progress: bool) -> list[PosedImage]:
    """Every ``stride``-th frame of each source of ``cfg.data`` that has a pose, at training size.

    Raises:
        DatasetError: a source cannot be read, or fewer than 2 frames have a pose.
        ConfigError: a source without ground truth with ``poses`` ``'gt'``.
    """
    tum = None if cfg.poses == 'gt' else read_tum(cfg.poses)
    out = []
    for path in [cfg.data] if isinstance(cfg.data, str) else cfg.data:
        with open_source(path, cfg.frames) as source:
            poses = source.ground_truth() if tum is None else (tum.stamps_ns, tum.matrices)
            if poses is None:
                raise ConfigError(f'{path} has no ground truth: give the camera poses as a TUM file (--poses '
                                  f'TRAJ.tum, e.g. the trajectory.tum of rapnet-loc replay)')
            frames = itertools.islice(source.frames(), 0, None, cfg.stride)
            total = None if source.total is None else -(-source.total // cfg.stride)
            for frame in tqdm(frames, total=total, desc=f'frames {Path(path).name}', disable=not progress):
                at = interpolate_poses(*poses, np.array([frame.stamp_ns]))
                if len(at):
                    out.append(posed_image(frame, at.matrices[0], source, cfg.image_width))
    if len(out) < 2:
        raise DatasetError(f'need at least 2 training frames with a pose, got {len(out)} from {cfg.data} (frames '
                           f'{cfg.frames or "all"}, stride {cfg.stride}, poses {cfg.poses})')
    return out


def targets(landmarks: SceneLandmarks, image: PosedImage, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """(h, w) int64 labels and (2, h, w) float32 unit directions of one image on the network's output grid."""
    K = scaled_intrinsics(image.K, stride)
    shape = grid_shape((image.color.shape[1], image.color.shape[0]), stride)
    labels, _ = render_labels(landmarks, K, image.T_wc, shape)
    directions = direction_map(labels, landmarks.landmarks, K, image.T_wc)
    return labels.astype(np.int64), np.ascontiguousarray(directions.transpose(2, 0, 1))


def network_input(colors: np.ndarray) -> torch.Tensor:
    """(B, 3, H', W') float32 in [0, 1] of (B, H, W, 3) uint8 RGB images, zero-padded at the bottom and right to a
    multiple of ``PAD``."""
    x = torch.from_numpy(np.ascontiguousarray(colors)).permute(0, 3, 1, 2).float() / 255.0
    h, w = x.shape[-2:]
    return F.pad(x, (0, -w % PAD, 0, -h % PAD))


def jittered(colors: np.ndarray, amount: float, rng: np.random.Generator) -> np.ndarray:
    """(B, H, W, 3) uint8 images each with a random contrast and brightness change of up to ``amount``."""
    if amount <= 0:
        return colors
    gain = 1 + rng.uniform(-amount, amount, (len(colors), 1, 1, 1))
    bias = 255 * rng.uniform(-amount, amount, (len(colors), 1, 1, 1))
    mean = colors.mean(axis=(1, 2, 3), keepdims=True)
    return np.clip((colors - mean) * gain + mean + bias, 0, 255).astype(np.uint8)


def warped(colors: np.ndarray, labels: np.ndarray, directions: np.ndarray, cfg: VSNetTrainConfig, stride: int,
           rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A batch (B, H, W, 3) uint8, (B, h, w) int64 labels and (B, 2, h, w) directions, each frame under its own random
    similarity warp about the image centre (module doc); labels warped in from outside the frame are -1 (ignored).

    Image pixel x and output cell g are related by x = stride * g + c, c = (stride - 1) / 2, so the warp
    x' = R x + t is g' = R g + (R c + t - c) / stride on the grid."""
    if not (cfg.warp_scale or cfg.warp_rotation or cfg.warp_shift):
        return colors, labels, directions
    colors, labels, directions = colors.copy(), labels.copy(), directions.copy()
    (H, W), (h, w) = colors.shape[1:3], labels.shape[1:]
    c = np.full(2, (stride - 1) / 2)
    for n in range(len(colors)):
        scale = (1 + cfg.warp_scale) ** rng.uniform(-1, 1)
        angle = np.radians(rng.uniform(-cfg.warp_rotation, cfg.warp_rotation))
        R = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        centre = np.array([(W - 1) / 2, (H - 1) / 2])
        t = centre - R @ centre + rng.uniform(-cfg.warp_shift, cfg.warp_shift, 2) * (W, H)
        colors[n] = cv2.warpAffine(colors[n], np.hstack([R, t[:, None]]), (W, H), flags=cv2.INTER_LINEAR)
        # each output cell takes the target of the cell the inverse warp maps it to (nearest)
        g = np.stack(np.meshgrid(np.arange(w), np.arange(h)), -1).reshape(-1, 2) - (R @ c + t - c) / stride
        src = np.rint(g @ np.linalg.inv(R).T).astype(np.int64)
        ok = (src[:, 0] >= 0) & (src[:, 0] < w) & (src[:, 1] >= 0) & (src[:, 1] < h)
        col, row = np.where(ok, src[:, 0], 0), np.where(ok, src[:, 1], 0)
        labels[n] = np.where(ok, labels[n][row, col], -1).reshape(h, w)
        turned = (R / scale) @ directions[n][:, row, col]
        directions[n] = np.where(ok, turned, 0).reshape(2, h, w)
    return colors, labels, directions


def _check(cfg: VSNetTrainConfig) -> None:
    positive = ('embedding_dim', 'image_width', 'stride', 'voxel', 'seed_resolution', 'min_points', 'depth_max',
                'batch', 'lr', 'checkpoint_every', 'margin', 'negatives')
    if bad := [f'{name} {getattr(cfg, name)}' for name in positive if not getattr(cfg, name) > 0]:
        raise ConfigError(f'VS-Net training options must be positive: {", ".join(bad)}')
    if cfg.steps < 0 or cfg.vote_weight < 0 or not 0 <= cfg.jitter < 1:
        raise ConfigError(f'VS-Net training needs steps >= 0, vote_weight >= 0 and 0 <= jitter < 1, got steps '
                          f'{cfg.steps}, vote_weight {cfg.vote_weight}, jitter {cfg.jitter}')
    if not (0 <= cfg.warp_scale < 1 and 0 <= cfg.warp_rotation <= 180 and 0 <= cfg.warp_shift < 0.5):
        raise ConfigError(f'VS-Net training needs 0 <= warp_scale < 1, 0 <= warp_rotation <= 180 and '
                          f'0 <= warp_shift < 0.5, got {cfg.warp_scale}, {cfg.warp_rotation}, {cfg.warp_shift}')
    if cfg.image_width % 4 or cfg.image_width < 64:
        raise ConfigError(f'image_width must be a multiple of 4 and at least 64, got {cfg.image_width}')


def model_record(model: VSNet, landmarks: SceneLandmarks, cfg: VSNetTrainConfig,
                 size: tuple[int, int]) -> dict:
    """What the model file holds (see the module doc)."""
    return {'format': MODEL_FORMAT, 'version': MODEL_VERSION,
            'config': {'backbone': cfg.backbone, 'embedding_dim': cfg.embedding_dim, 'image_width': cfg.image_width,
                       'seed_resolution': cfg.seed_resolution, 'voxel': cfg.voxel},
            'image_size': list(size), 'state_dict': model.state_dict(),
            'landmarks': torch.from_numpy(np.asarray(landmarks.landmarks, np.float64))}


def train_vsnet(cfg: VSNetTrainConfig, resume: bool = False, progress: bool = True) -> VSNetTrainResult:
    """Train (or, with ``resume``, continue training) VS-Net on ``cfg.data`` and write the model file.

    Raises:
        ConfigError: invalid options, or a training state that cannot be resumed with them.
        DatasetError: unreadable frames or poses, no depth, or no landmark.
    """
    _check(cfg)
    images = training_images(cfg, progress)
    landmarks = build_landmarks(images, cfg.voxel, cfg.seed_resolution, cfg.min_points, cfg.depth_max)
    torch.manual_seed(cfg.seed)
    model = VSNet(landmarks.num_landmarks, cfg.embedding_dim, cfg.backbone)
    stride = model.stride
    labels, directions = zip(*(targets(landmarks, image, stride) for image in
                               tqdm(images, desc='targets', disable=not progress)))
    colors, labels, directions = np.stack([i.color for i in images]), np.stack(labels), np.stack(directions)
    h, w = labels.shape[1:]
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    rng = np.random.default_rng(cfg.seed)
    generator = torch.Generator().manual_seed(cfg.seed)
    out = Path(cfg.out)
    state_path, losses_path = out.with_name(out.name + '.train_state.pt'), out.with_name(out.name + '.losses.csv')
    step, losses = 0, []
    if resume and state_path.is_file():
        state = load_state(state_path, cfg, RESUMABLE)
        model.load_state_dict(state['model'])
        optimizer.load_state_dict(state['optimizer'])
        rng.bit_generator.state = state['numpy_rng']
        generator.set_state(state['torch_generator'])
        step, losses = int(state['step']), list(state['losses'])
    model.train()
    bar = tqdm(range(step, cfg.steps), initial=step, total=cfg.steps, desc='train vsnet', disable=not progress)
    for step in bar:
        pick = rng.choice(len(images), size=min(cfg.batch, len(images)), replace=False)
        batch = warped(colors[pick], labels[pick], directions[pick], cfg, stride, rng)
        embeddings, votes = model(network_input(jittered(batch[0], cfg.jitter, rng)))
        loss, parts = vsnet_loss(embeddings[..., :h, :w], votes[..., :h, :w], torch.from_numpy(batch[1]),
                                 torch.from_numpy(batch[2]), model.prototypes, k=cfg.negatives,
                                 margin=cfg.margin, vote_weight=cfg.vote_weight, generator=generator)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        bar.set_postfix({name: f'{float(value):.3f}' for name, value in parts.items()})
        if (step + 1) % cfg.checkpoint_every == 0 or step + 1 == cfg.steps:
            save_state(state_path, {'model': model.state_dict(), 'optimizer': optimizer.state_dict(),
                                    'step': step + 1, 'losses': losses, 'numpy_rng': rng.bit_generator.state,
                                    'torch_generator': generator.get_state()}, cfg, losses_path)
    model.eval()
    with atomic_write(out, 'wb') as fh:
        torch.save(model_record(model, landmarks, cfg, (colors.shape[2], colors.shape[1])), fh)
    return VSNetTrainResult(losses, out, state_path, landmarks.num_landmarks)
