"""The two ways to run the dense network: PyTorch (``TorchRunner``) and ONNX Runtime (``OnnxRunner``).

Both take the (1, 3, H, W) float32 input of ``preprocess.normalize`` and return F (C, H, W) and R (H, W) as
float32 torch tensors (R None when not asked for), which ``detect.detect`` turns into keypoints.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from rapnet_loc.errors import ConfigError
from rapnet_loc.rapnet.model import RapNet
from rapnet_loc.rapnet.weights import PREPROCESSING, WeightsInfo

LOG = logging.getLogger(__name__)
DTYPES = {'fp32': torch.float32, 'fp16': torch.float16, 'bf16': torch.bfloat16}
GPU_PROVIDERS = ('TensorrtExecutionProvider', 'CUDAExecutionProvider')
META_KEYS = ('width', 'region', 'preprocessing', 'source')


def torch_device(name: str) -> torch.device:
    """``'auto'``: CUDA when available, else CPU; otherwise the named device."""
    if name == 'auto':
        return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise ConfigError(f'unknown torch device {name!r}: {exc}') from exc
    if device.type == 'cuda' and not torch.cuda.is_available():
        raise ConfigError(f'device {name!r} asked for, but PyTorch sees no CUDA GPU; use device auto or cpu')
    return device


class TorchRunner:
    """``RapNet`` on a device, in fp32, fp16 or bf16, optionally channels-last (faster convolutions on GPUs).

    Args:
        model, info: from ``weights.load_model`` or ``weights.random_model``.
        device: ``'auto'``, ``'cpu'``, ``'cuda'``, ``'cuda:1'``...
        precision: ``'fp32'``, ``'fp16'`` (CUDA only) or ``'bf16'``.
    """

    def __init__(self, model: RapNet, info: WeightsInfo, device: str = 'auto', precision: str = 'fp32',
                 channels_last: bool = True):
        if precision not in DTYPES:
            raise ConfigError(f'unknown precision {precision!r}; expected one of {", ".join(DTYPES)}')
        self.device, self.dtype, self.info = torch_device(device), DTYPES[precision], info
        if self.dtype == torch.float16 and self.device.type != 'cuda':
            raise ConfigError('precision fp16 needs a CUDA device; use fp32 or bf16 on the CPU')
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.model = model.eval().to(self.device, self.dtype, memory_format=self.memory_format)

    @torch.inference_mode()
    def __call__(self, x: np.ndarray, region: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        x = torch.from_numpy(x).to(self.device, self.dtype).contiguous(memory_format=self.memory_format)
        features = self.model.backbone(x)
        r = self.model.region(features)[0].float() if region else None
        return features[0].float().contiguous(), r


def onnx_session(path: Path, device: str, network: str):
    """An ONNX Runtime session of the ``network`` file ``path``: with the TensorRT and CUDA execution providers when
    ONNX Runtime has them (onnxruntime-gpu) and ``device`` is not ``'cpu'``, else on the CPU, with one log line when
    that is a fallback.

    Raises:
        ConfigError: the file is missing or ONNX Runtime cannot load it.
    """
    import onnxruntime as ort

    if not path.is_file():
        raise ConfigError(f'{network} ONNX file not found: {path}')
    gpu = [p for p in GPU_PROVIDERS if p in ort.get_available_providers()] if device != 'cpu' else []
    if not gpu and device != 'cpu':
        LOG.info('ONNX Runtime has no CUDA or TensorRT execution provider (onnxruntime-gpu): running %s on the '
                 'CPU', path.name)
    try:
        return ort.InferenceSession(str(path), providers=gpu + ['CPUExecutionProvider'])
    except Exception as exc:  # onnxruntime raises its own unexported exception types
        raise ConfigError(f'ONNX Runtime cannot load {path}: {str(exc).splitlines()[0]}') from exc


class OnnxRunner:
    """An ONNX file written by ``export.export_onnx`` in ONNX Runtime (``onnx_session``)."""

    def __init__(self, path: str | Path, device: str = 'auto'):
        path = Path(path)
        self.session = onnx_session(path, device, 'RaP-Net')
        meta = self.session.get_modelmeta().custom_metadata_map
        if missing := [k for k in META_KEYS if k not in meta]:
            raise ConfigError(f'{path} lacks the rapnet_loc metadata {", ".join(missing)}: export it with '
                              f'`rapnet-loc export-onnx`')
        if meta['preprocessing'] not in PREPROCESSING:
            raise ConfigError(f'{path}: unknown preprocessing {meta["preprocessing"]!r} in its metadata')
        self.info = WeightsInfo(str(path), float(meta['width']), meta['region'] == '1', meta['preprocessing'])
        self.providers = self.session.get_providers()

    def __call__(self, x: np.ndarray, region: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        outputs = self.session.run(['features', 'region'] if region else ['features'], {'image': x})
        return torch.from_numpy(outputs[0][0]), torch.from_numpy(outputs[1][0]) if region else None
