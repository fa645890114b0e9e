"""RaP-Net weight files: the authors' checkpoints, D2-Net's, and the ones ``rapnet-loc train-rapnet`` writes.

Every file is a ``torch.save`` dict whose ``model`` entry is a state dict in the authors' key layout; files written
here add ``config`` (``width``, ``preprocessing``) and ``meta``. Key mapping, official -> ``RapNet`` module::

    dense_feature_extraction.model.{0,2,5,7,10,12,14,17,19,21}.{weight,bias}  -> backbone.convs.{0..9}.{weight,bias}
    attention.branch_{0,1,2}.weight                                            -> region.branches.{0,1,2}.weight
    attention.norm_{0,1,2}.{weight,bias,running_mean,running_var,num_batches_tracked}
                                                                               -> region.norms.{0,1,2}.(same)
    attention.attention_score.{weight,bias}                                    -> region.score.{weight,bias}

(conv1_1, conv1_2, conv2_1, conv2_2, conv3_1..3, conv4_1..3 in that order; branches k = 3, 5, 7.)
A file with ``attention.*`` keys is a RaP-Net file (``rapnet.basenet.pth``, ``rapnet.overall.pth``): base net and
region head, "torch" preprocessing. One without is a base net alone: D2-Net's ``d2_tf.pth`` ("caffe"
preprocessing: BGR, mean [103.939, 116.779, 123.68], no scaling) or a base-stage file of ours (its ``config``
says "torch"). Loading is strict: missing and unexpected keys, and shapes that do not fit, are named.
"""
from __future__ import annotations

import argparse
import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from rapnet_loc.errors import ConfigError
from rapnet_loc.io.atomic import atomic_write
from rapnet_loc.rapnet.model import RapNet

OFFICIAL_CONV_INDICES = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21)   # positions of conv1_1..conv4_3 in nn.Sequential
PREPROCESSING = ('torch', 'caffe')
DEFAULT_WIDTH = 0.25
PACKAGE_ROOT = Path(__file__).resolve().parents[1]
_PREFIXES = ([(f'dense_feature_extraction.model.{i}.', f'backbone.convs.{k}.')
              for k, i in enumerate(OFFICIAL_CONV_INDICES)]
             + [(f'attention.branch_{k}.', f'region.branches.{k}.') for k in range(3)]
             + [(f'attention.norm_{k}.', f'region.norms.{k}.') for k in range(3)]
             + [('attention.attention_score.', 'region.score.')])
_LISTED = 8


@dataclass(frozen=True)
class WeightsInfo:
    """What a weight file holds: ``width`` multiplier, ``region`` head present, input ``preprocessing``."""

    path: str
    width: float
    region: bool
    preprocessing: str


def _rename(state: dict, official_to_internal: bool) -> dict:
    """``state`` with its keys mapped (see the module doc); keys that no rule maps are dropped."""
    out = {}
    for key, value in state.items():
        for official, internal in _PREFIXES:
            src, dst = (official, internal) if official_to_internal else (internal, official)
            if key.startswith(src):
                out[dst + key[len(src):]] = value
                break
    return out


def to_official(state: dict) -> dict:
    """A ``RapNet`` state dict with the authors' key names."""
    return _rename(state, official_to_internal=False)


def _names(keys: list[str]) -> str:
    keys = sorted(keys)
    more = f' and {len(keys) - _LISTED} more' if len(keys) > _LISTED else ''
    return ', '.join(keys[:_LISTED]) + more


def read_checkpoint(path: str | Path) -> tuple[dict, dict]:
    """The ``model`` state dict (official names) and the ``config`` dict (empty for the authors' files) of ``path``.

    Pickled argparse Namespaces (training arguments kept by the authors' scripts) are allowed; any other object
    than tensors and plain containers is refused (``torch.load(weights_only=True)``).
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f'RaP-Net weights file not found: {path}')
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            obj = torch.load(path, map_location='cpu', weights_only=True)
    except (pickle.UnpicklingError, zipfile.BadZipFile, RuntimeError, EOFError, ValueError, OSError) as exc:
        raise ConfigError(f'cannot read RaP-Net weights file {path}: {str(exc).splitlines()[0]}') from exc
    if not isinstance(obj, dict) or not isinstance(obj.get('model'), dict):
        found = sorted(obj) if isinstance(obj, dict) else type(obj).__name__
        raise ConfigError(f'RaP-Net weights file {path} has no "model" state dict (found {found})')
    config = obj.get('config') or {}
    return obj['model'], dict(config)


def require_width(path: str | Path, found: float, wanted: float) -> None:
    """Raise ConfigError when the network in ``path`` (width ``found``) is not of width ``wanted``."""
    if abs(float(found) - float(wanted)) > 1e-9:
        raise ConfigError(f'RaP-Net weights file {path} holds a width-{found:g} network but width {wanted:g} was '
                          f'asked for; set the width option to {found:g}')


def load_model(path: str | Path, width: float | None = None, need_region: bool = False) -> tuple[RapNet, WeightsInfo]:
    """``RapNet`` in eval mode with the weights of ``path`` (any layout of the module doc), and what they are.

    Args:
        width: expected width multiplier (None: the file's; 1.0 for the authors' and D2-Net's files).
        need_region: fail when the file has no region head.
    Raises:
        ConfigError: unreadable file, missing or unexpected keys, shapes or width that do not fit.
    """
    state, config = read_checkpoint(path)
    region = any(k.startswith('attention.') for k in state)
    file_width = float(config.get('width', 1.0))
    if width is not None:
        require_width(path, file_width, width)
    if need_region and not region:
        raise ConfigError(f'RaP-Net weights file {path} has no region head (attention.* keys): it is a base net '
                          f'alone (D2-Net or a base-stage training file); use the rapnet_p extractor, or weights '
                          f'with a trained region head')
    preprocessing = config.get('preprocessing', 'torch' if region else 'caffe')
    if preprocessing not in PREPROCESSING:
        raise ConfigError(f'RaP-Net weights file {path}: unknown preprocessing {preprocessing!r}')
    model = RapNet(file_width, region=region)
    expected = to_official(model.state_dict())
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    if missing or unexpected:
        raise ConfigError(f'RaP-Net weights file {path} does not fit the {"RaP-Net" if region else "base-net"} '
                          f'layout: missing keys: {_names(missing) or "none"}; '
                          f'unexpected keys: {_names(unexpected) or "none"}')
    wrong = [f'{k} {tuple(state[k].shape)} (expected {tuple(v.shape)})' for k, v in expected.items()
             if tuple(state[k].shape) != tuple(v.shape)]
    if wrong:
        raise ConfigError(f'RaP-Net weights file {path} has tensors of the wrong shape for a width-{file_width:g} '
                          f'network: {_names(wrong)}')
    model.load_state_dict(_rename(state, official_to_internal=True), strict=True)
    return model.eval(), WeightsInfo(str(path), file_width, region, preprocessing)


def random_model(width: float, seed: int = 0, region: bool = True) -> tuple[RapNet, WeightsInfo]:
    """``RapNet`` in eval mode with random weights drawn from ``seed`` (tests; the start of training).

    Convolutions get torchvision's VGG initialisation (Kaiming normal, fan-out, zero bias), so F keeps its scale
    through the 10 layers; BatchNorm keeps PyTorch's defaults.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = RapNet(width, region=region)
        for module in model.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode='fan_out', nonlinearity='relu')
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
    return model.eval(), WeightsInfo(f'random(seed={seed})', float(width), region, 'torch')


def save_weights(path: str | Path, model: RapNet, preprocessing: str = 'torch', meta: dict | None = None) -> Path:
    """Write ``model`` (region head included when it has one) in the official layout with its ``config``."""
    obj = {'model': to_official({k: v.detach().cpu() for k, v in model.state_dict().items()}),
           'config': {'width': model.width, 'preprocessing': preprocessing},
           'meta': dict(meta or {})}
    with atomic_write(path, 'wb') as fh:
        torch.save(obj, fh)
    return Path(path)


def default_weights_name(width: float, suffix: str = '.pt') -> str:
    """File name of the shipped weights of a width: ``rapnet_w025.pt`` for 0.25."""
    return f'rapnet_w{round(width * 100):03d}{suffix}'


def model_dirs() -> list[Path]:
    """Folders searched for default weights: the source tree's ``models/`` and colcon's ``share/rapnet_loc/models``."""
    dirs = [PACKAGE_ROOT.parent / 'models']
    if len(PACKAGE_ROOT.parents) > 3:       # installed: PREFIX/lib/pythonX.Y/site-packages/rapnet_loc
        dirs.append(PACKAGE_ROOT.parents[3] / 'share' / 'rapnet_loc' / 'models')
    return dirs


def default_weights(width: float, suffix: str = '.pt') -> Path:
    """The default weights file of ``width`` in ``model_dirs()``.

    Raises:
        ConfigError: none there; the message names the file and how to make or get it.
    """
    name = default_weights_name(width, suffix)
    for folder in model_dirs():
        if (folder / name).is_file():
            return folder / name
    how = ('export it with `rapnet-loc export-onnx --weights models/{} --out models/{}`'
           .format(default_weights_name(width), name) if suffix == '.onnx' else
           'train it with `rapnet-loc train-rapnet` (see models/README.md)')
    raise ConfigError(f'no RaP-Net weights: expected {name} in {" or ".join(str(d) for d in model_dirs())}; '
                      f'{how}, or point the weights option (--weights) to a checkpoint (the authors\' '
                      f'rapnet.overall.pth with width 1.0, or D2-Net\'s d2_tf.pth for rapnet_p)')
