"""Benchmark of the synthetic sequence generator (not a test; prints results).

1. Rendering: median (and 90th percentile) ms per frame of ``SequenceWorld.render`` (geometry, texturing,
   lighting, exposure, people, motion blur: everything but bag output) along a robot path, at 640x480 and
   848x480, for the default ``home`` scene with every challenge on, then for every scene at 640x480.
2. Bag writing: seconds and ms per frame to write pre-rendered 848x480 frames (colour, depth, labels, ground
   truth, odometry) with each chunk compression, and the resulting bag size.

Usage: ``python benchmarks/bench_synth.py [--frames N] [--write-frames N]``.
"""
from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from rapnet_loc.synth import SCENES, Challenges
from rapnet_loc.synth.bag import COMPRESSIONS, SequenceBag
from rapnet_loc.synth.camera import camera_for_size
from rapnet_loc.synth.generate import SequenceWorld, depth_to_mm
from rapnet_loc.synth.render import Renderer
from rapnet_loc.synth.robot import Robot
from rapnet_loc.synth.scenes import scene_spec
from rapnet_loc.synth.textures import TextureBank


def sequence(scene: str, width: int, height: int, frames: int) -> SequenceWorld:
    textures = TextureBank()
    challenges = Challenges()
    return SequenceWorld(scene_spec(scene, challenges), Robot.for_scene(scene), 1, frames, challenges, 0, textures,
                         Renderer(camera_for_size(width, height), textures))


def bench_render(scene: str, width: int, height: int, frames: int) -> np.ndarray:
    """ms per frame of every frame of a ``frames``-frame sequence (after one warm-up frame)."""
    seq = sequence(scene, width, height, frames)
    seq.render(0.0)
    times = []
    for t in seq.frame_t:
        start = time.perf_counter()
        seq.render(float(t))
        times.append(time.perf_counter() - start)
    return np.array(times) * 1e3


def bench_write(frames: int) -> None:
    seq = sequence('home', 848, 480, frames)
    rendered = [seq.render(float(t)) for t in seq.frame_t]
    stamps = seq.stamp_ns(seq.frame_t)
    gt = seq.trajectory.poses(seq.frame_t)
    camera = seq.renderer.camera
    print(f'\nbag writing, {frames} pre-rendered 848x480 frames (colour + depth + labels + gt + odometry):')
    with tempfile.TemporaryDirectory() as tmp:
        for compression in COMPRESSIONS:
            path = Path(tmp) / f'{compression}.bag'
            start = time.perf_counter()
            with SequenceBag(path, compression) as bag:
                bag.write_static(int(stamps[0]), camera, seq.robot.static, seq.labels)
                for i, (frame, image) in enumerate(rendered):
                    bag.write_frame(int(stamps[i]), i, camera.frame_id, image, depth_to_mm(frame.depth), frame.label)
                    bag.write_gt(int(stamps[i]), i, gt[i])
                    if i % 3 != 2:                       # 20 Hz odometry next to 30 Hz images
                        bag.write_odom(int(stamps[i]), i, gt[i], 0.4, 0.0)
            elapsed = time.perf_counter() - start
            size = path.stat().st_size / 2 ** 20
            print(f'  {compression:5s} {elapsed:6.2f} s  {elapsed / frames * 1e3:7.1f} ms/frame  {size:7.1f} MiB  '
                  f'({size / frames * 1024:.0f} KiB/frame)')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--frames', type=int, default=150, help='frames rendered per measurement')
    parser.add_argument('--write-frames', type=int, default=60, help='frames written per compression')
    args = parser.parse_args()
    print(f'synthetic renderer benchmark ({platform.processor() or platform.machine()}, '
          f'python {platform.python_version()})')
    print(f'rendering, scene home, every challenge on, {args.frames} frames:')
    for width, height in ((640, 480), (848, 480)):
        ms = bench_render('home', width, height, args.frames)
        print(f'  {width}x{height}: median {np.median(ms):6.1f} ms/frame  p90 {np.percentile(ms, 90):6.1f}  '
              f'({1e3 / np.median(ms):5.1f} frames/s)')
    print(f'rendering at 640x480 per scene, {args.frames} frames:')
    for scene in SCENES:
        ms = bench_render(scene, 640, 480, args.frames)
        print(f'  {scene:9s} median {np.median(ms):6.1f} ms/frame  p90 {np.percentile(ms, 90):6.1f}')
    bench_write(args.write_frames)


if __name__ == '__main__':
    main()
