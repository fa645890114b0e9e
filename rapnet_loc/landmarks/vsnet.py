"""``vsnet``: landmark-voting pose estimation (VS-Net, Huang et al., CVPR 2021) of one colour image in a known scene.

A model trained on the scene (``rapnet-loc train-vsnet``, ``rapnet_loc.landmarks.train``) labels each pixel of the
image with a scene landmark (nearest prototype by cosine of its embedding) and votes for the direction to that
landmark's projection. Per landmark, the votes are intersected with RANSAC (``voting.intersect_votes``): segments
under ``min_segment`` pixels and landmarks left with fewer than ``min_votes`` consistent votes are dropped. The
2-D / 3-D landmark pairs give the pose by RANSAC-PnP (EPnP, ``reprojection_px`` at the camera's resolution,
``pnp_iterations``), refined on its inliers (each weighted by the information of its vote intersection, taken in
distorted pixels: the distortion changes it little over one landmark), with a covariance from the residuals
(``voting.solve_pose``); fewer than ``min_correspondences`` pairs or inliers is "no pose". Depth is not used: query
images are RGB only.

The ``model`` option is a file path or the name of a model in ``models/`` (``NAME`` for ``models/NAME.pt``). The
image is shrunk to the model's training width; the query camera's intrinsics (``Scene.camera``) turn the landmark
positions into a pose, so another camera of similar field of view can be used.

With a map (``localize MAP --estimator vsnet``, the front end's landmark priors) the poses must be in the map's frame:
the estimator refuses a model whose landmarks do not lie on the map's surfaces (``check_map_frame``), which is what a
model of another scene, or one trained on poses of another frame (ground truth for a map of a replay), looks like.
"""
from __future__ import annotations

import functools
import pickle
import zipfile
from dataclasses import fields
from pathlib import Path

import numpy as np
import torch
from scipy.spatial import cKDTree

from rapnet_loc.errors import ConfigError
from rapnet_loc.io.types import RGBDFrame
from rapnet_loc.landmarks.base import PoseEstimate, PoseEstimator, Scene, register
from rapnet_loc.landmarks.network import VSNet
from rapnet_loc.landmarks.train import MODEL_FORMAT, MODEL_VERSION, grid_shape, image_size, network_input
from rapnet_loc.landmarks.voting import LandmarkVotes, VotingConfig, intersect_votes, solve_pose
from rapnet_loc.rapnet.weights import model_dirs
from rapnet_loc.slam.camera import Camera
from rapnet_loc.slam.map import Map
from rapnet_loc.vpr.backbones import resized


class LandmarkModel:
    """A trained VS-Net for one scene: ``net`` (eval mode), ``landmarks`` (N, 3) world positions of ids 1..N, the
    training image width ``image_width`` and the landmark spacing ``seed_resolution`` (metres)."""

    def __init__(self, net: VSNet, landmarks: np.ndarray, image_width: int, seed_resolution: float):
        self.net, self.landmarks, self.image_width = net, landmarks, image_width
        self.seed_resolution = seed_resolution


# share of a map's points that must lie within one landmark spacing of a landmark. A map and a model built from the
# same posed frames put nearly all its points there, a copy turned and moved by a metre almost none; landmarks cover
# the surfaces densely, so offsets of a few decimetres still pass. The check is for another scene or frame, and it
# leaves room for depth noise far from the camera.
MAP_POINTS_NEAR = 0.5


def check_map_frame(model: LandmarkModel, slam_map: Map, where: str) -> None:
    """Raise ``ConfigError`` unless at least ``MAP_POINTS_NEAR`` of the (good) points of ``slam_map`` lie within
    ``model.seed_resolution`` of a landmark; a map of fewer than 20 points is not judged."""
    points = slam_map.points.positions[~slam_map.points.bad]
    if len(points) < 20:
        return
    distance, _ = cKDTree(model.landmarks).query(points, distance_upper_bound=model.seed_resolution)
    near = float(np.isfinite(distance).mean())
    if near < MAP_POINTS_NEAR:
        raise ConfigError(f'{where}: only {near:.0%} of the map\'s points lie within {model.seed_resolution:g} m of a '
                          f'landmark of the VS-Net model: it belongs to another scene or to another frame. Train it '
                          f'on the poses of the run that saved the map (rapnet-loc train-vsnet ... --poses '
                          f'RUN/trajectory.tum)')


def model_path(name: str) -> Path:
    """The model file ``name``: an existing path, else ``name`` (``.pt`` added) in ``models/``.

    Raises:
        ConfigError: none given, or found nowhere (the message says where it looked and how to make one).
    """
    if not name:
        raise ConfigError("pose estimator 'vsnet' needs a model: train one with `rapnet-loc train-vsnet FRAMES "
                          "--out MODEL.pt` and give it as the model option (--model)")
    if Path(name).is_file():
        return Path(name)
    file = name if name.endswith('.pt') else f'{name}.pt'
    for folder in model_dirs():
        if (folder / file).is_file():
            return folder / file
    raise ConfigError(f'VS-Net model not found: {name} (neither a file nor {file} in '
                      f'{" or ".join(str(d) for d in model_dirs())}); train one with `rapnet-loc train-vsnet`')


def load_model(path: str | Path) -> LandmarkModel:
    """The VS-Net model in ``path`` (written by ``rapnet_loc.landmarks.train``). A file is read once while it is
    unchanged (same size and modification time): a node that checks its model at start-up and the estimator it
    makes later share one model, which nothing modifies.

    Raises:
        ConfigError: unreadable or truncated file, not a VS-Net model, another version, or tensors that do not
            fit its landmark count or backbone (the message names the file and what is wrong).
    """
    try:
        stat = Path(path).stat()
    except OSError as exc:
        raise ConfigError(f'cannot read VS-Net model {path}: {exc.strerror}') from None
    return _read_model(Path(path).resolve(), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=2)
def _read_model(path: Path, mtime_ns: int, size: int) -> LandmarkModel:
    """``load_model`` of the file ``path`` at that modification time and size (the cache key)."""
    try:
        record = torch.load(path, map_location='cpu', weights_only=True)
    except (pickle.UnpicklingError, zipfile.BadZipFile, RuntimeError, EOFError, ValueError, OSError) as exc:
        raise ConfigError(f'cannot read VS-Net model {path}: {str(exc).splitlines()[0]}') from None
    if not isinstance(record, dict) or record.get('format') != MODEL_FORMAT:
        raise ConfigError(f'{path} is not a VS-Net model (rapnet-loc train-vsnet writes them)')
    if record.get('version') != MODEL_VERSION:
        raise ConfigError(f'VS-Net model {path} has version {record.get("version")}; this rapnet_loc reads version '
                          f'{MODEL_VERSION}: retrain it with `rapnet-loc train-vsnet`')
    try:
        config, landmarks, state = dict(record['config']), record['landmarks'].numpy(), record['state_dict']
        embedding_dim, width = int(config['embedding_dim']), int(config['image_width'])
        backbone, seed_resolution = str(config['backbone']), float(config['seed_resolution'])
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ConfigError(f'VS-Net model {path} lacks part of its record ({type(exc).__name__}: {exc}): it is '
                          f'damaged or was not written by rapnet-loc train-vsnet') from None
    if landmarks.ndim != 2 or landmarks.shape[1] != 3 or not np.isfinite(landmarks).all():
        raise ConfigError(f'VS-Net model {path}: landmarks must be a finite (N, 3) array, got {landmarks.shape}')
    net = VSNet(len(landmarks), embedding_dim, backbone, pretrained=False)
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ConfigError(f'VS-Net model {path} does not fit its {len(landmarks)} landmarks and '
                          f'{backbone!r} backbone: {str(exc).splitlines()[-1].strip()}') from None
    return LandmarkModel(net.eval(), landmarks, width, seed_resolution)


@register('vsnet')
class VSNetEstimator(PoseEstimator):
    """VS-Net landmark voting (see the module doc); needs no map, only the ``model``.

    Raises:
        ConfigError: no or a bad model, bad voting options, or a model that does not fit ``scene.map_file``.
    """

    default_conf = {'model': '', 'seed': 0, **{f.name: f.default for f in fields(VotingConfig)}}

    def __init__(self, conf: dict | None, scene: Scene):
        super().__init__(conf, scene)
        self.voting = VotingConfig(**{f.name: self.conf[f.name] for f in fields(VotingConfig)})
        path = model_path(self.conf['model'])
        self.model = load_model(path)
        if scene.map_file is not None:
            check_map_frame(self.model, scene.map_file.map, f'VS-Net model {path} on map {scene.map_file.path}')
        self.camera = Camera.from_info(scene.camera)
        self.last_landmarks = 0

    @torch.inference_mode()
    def landmark_votes(self, color: np.ndarray) -> LandmarkVotes:
        """The landmarks found in ``color`` (H, W, 3) uint8 RGB: ids, pixel positions in ``color`` (pixel centres at
        integer coordinates; positions may lie outside the image) and their information matrices."""
        h0, w0 = color.shape[:2]
        size = image_size(w0, h0, self.model.image_width)
        stride = self.model.net.stride
        gh, gw = grid_shape(size, stride)
        embeddings, votes = self.model.net(network_input(resized(color, size)[None]))
        labels, _ = self.model.net.segment(embeddings[..., :gh, :gw])
        votes = votes[0, :, :gh, :gw]
        rows, cols = torch.meshgrid(torch.arange(gh, dtype=torch.float32), torch.arange(gw, dtype=torch.float32),
                                    indexing='ij')
        scale = torch.tensor([w0 / size[0], h0 / size[1]]) * stride     # grid cell -> pixels of ``color``
        xy = (torch.stack([cols, rows], -1).reshape(-1, 2) + 0.5) * scale - 0.5
        unit = torch.nn.functional.normalize(votes.reshape(2, -1).T, dim=1)
        generator = torch.Generator().manual_seed(int(self.conf['seed']))
        return intersect_votes(xy, unit, labels[0].reshape(-1), self.voting, generator)

    def estimate(self, rgbd: RGBDFrame) -> PoseEstimate | None:
        found = self.landmark_votes(rgbd.color)
        self.last_landmarks = len(found)
        if len(found) == 0:
            return None
        weights = found.information if self.voting.vote_information else None
        return solve_pose(self.camera.undistort(found.points), self.model.landmarks[found.ids - 1], self.camera.K,
                          self.voting, weights)
