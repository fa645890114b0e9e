"""ONNX export of the dense network (F and, when present, R) with dynamic batch, height and width.

The graph holds the network alone: input ``image`` (B, 3, H, W) float32 normalised as the metadata's
``preprocessing`` says; outputs ``features`` (B, C, H, W) and ``region`` (B, H, W). Detection, NMS and selection
stay in ``rapnet_loc.rapnet.detect``, shared with the PyTorch path. Metadata (``OnnxRunner`` reads it):
``width``, ``region`` (1 or 0), ``preprocessing``, ``source`` (the weights exported).
"""
from __future__ import annotations

import logging
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import torch

from rapnet_loc.io.atomic import atomic_write
from rapnet_loc.rapnet.model import RapNet
from rapnet_loc.rapnet.runtime import OnnxRunner
from rapnet_loc.rapnet.weights import WeightsInfo

LOG = logging.getLogger(__name__)
OPSET = 17


@dataclass(frozen=True)
class ExportReport:
    """Result of ``export_onnx``: the file, its size, and the largest |ONNX Runtime - PyTorch| differences."""

    path: Path
    size_bytes: int
    check_shape: tuple[int, int]
    max_diff_features: float
    max_diff_region: float | None


def write_onnx(model: torch.nn.Module, example: torch.Tensor, path: Path, outputs: list[str],
               axes: dict[str, dict[int, str]], meta: dict[str, str], opset: int = OPSET) -> bytes:
    """Trace ``model`` on ``example`` (input ``image``) into an ONNX graph with ``outputs``, dynamic ``axes`` and
    metadata ``meta``, checked by ``onnx.checker``, written atomically to ``path``; returns the file's bytes."""
    tmp = path.with_name(f'.{path.name}.trace')
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', DeprecationWarning)   # the TorchScript exporter; onnxscript is absent
            # instance norm always uses its input's statistics (XFeat's input normalisation), as exported
            warnings.filterwarnings('ignore', "ONNX export mode is set to TrainingMode.EVAL, but operator "
                                    "'instance_norm'", UserWarning)
            torch.onnx.export(model, (example,), str(tmp), input_names=['image'], output_names=outputs,
                              dynamic_axes=axes, opset_version=opset, dynamo=False)
        graph = onnx.load(str(tmp))
    finally:
        tmp.unlink(missing_ok=True)
    onnx.checker.check_model(graph)
    onnx.helper.set_model_props(graph, meta)
    data = graph.SerializeToString()
    with atomic_write(path, 'wb') as fh:
        fh.write(data)
    return data


def export_onnx(model: RapNet, info: WeightsInfo, path: str | Path, opset: int = OPSET,
                check_shape: tuple[int, int] = (96, 136)) -> ExportReport:
    """Export ``model`` to ``path`` and check the file with ONNX Runtime (CPU) against PyTorch.

    The trace uses a 64x80 input; the check runs a random input of ``check_shape`` (H, W), another size, so the
    dynamic axes are exercised.
    """
    path = Path(path)
    model = model.float().eval().cpu()
    outputs = ['features', 'region'] if model.region is not None else ['features']
    axes = {'image': {0: 'batch', 2: 'height', 3: 'width'}, 'features': {0: 'batch', 2: 'height', 3: 'width'},
            'region': {0: 'batch', 1: 'height', 2: 'width'}}
    start = time.perf_counter()
    LOG.info('tracing the width-%g network (%s) for ONNX opset %d', info.width, ' and '.join(outputs), opset)
    meta = {'width': f'{info.width:g}', 'region': '1' if model.region is not None else '0',
            'preprocessing': info.preprocessing, 'source': info.path}
    data = write_onnx(model, torch.zeros(1, 3, 64, 80), path, outputs, {k: axes[k] for k in ['image', *outputs]},
                      meta, opset)
    LOG.info('wrote %s (%.1f MB) in %.1f s; checking it with ONNX Runtime on a %dx%d input', path, len(data) / 1e6,
             time.perf_counter() - start, check_shape[1], check_shape[0])
    x = np.random.default_rng(0).standard_normal((1, 3, *check_shape)).astype(np.float32)
    f_onnx, r_onnx = OnnxRunner(path, device='cpu')(x, region=model.region is not None)
    with torch.inference_mode():
        out = model(torch.from_numpy(x))
    f_torch, r_torch = (out[0][0], out[1][0]) if model.region is not None else (out[0], None)
    diff_f = float((f_onnx - f_torch).abs().max())
    diff_r = None if r_torch is None else float((r_onnx - r_torch).abs().max())
    LOG.info('ONNX Runtime vs PyTorch: max |dF| = %.2e (max |F| %.2f)%s', diff_f, float(f_torch.abs().max()),
             '' if diff_r is None else f', max |dR| = {diff_r:.2e}')
    return ExportReport(path, len(data), check_shape, diff_f, diff_r)
