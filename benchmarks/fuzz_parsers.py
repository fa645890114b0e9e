"""Long fuzzing runs of every parser (issue P11): the property tests of ``test/test_faults_fuzz.py`` (a parser returns
a valid result or raises the project's error for its input, nothing else), run for ``--minutes`` per parser in
batches of fresh random examples. ``make test`` runs each of them for a few dozen examples only.

Prints, per parser, the examples run (calls of the test body) and every failure hypothesis found (shrunk to a
minimal input).
Exit status 1 when any parser failed.

    python benchmarks/fuzz_parsers.py [--minutes 10] [--batch 200] [--only NAME ...]
"""
import argparse
import importlib
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

from rapnet_loc.slam import SlamConfig, System

TEST_DIR = Path(__file__).resolve().parents[1] / 'test'
PARSERS = {
    'image messages': 'test_image_messages_decode_or_are_refused',
    'camera info': 'test_camera_info_gives_a_usable_camera_or_is_refused',
    'TUM files': 'test_tum_files_read_or_are_refused',
    'OpenLORIS files': 'test_openloris_files_read_or_are_refused',
    'YAML configurations': 'test_yaml_configurations_load_or_are_refused',
    'map files': 'test_map_files_load_or_are_refused',
    'bag message payloads': 'test_bag_message_payloads_deserialize_or_are_refused',
    'PointCloud2 feature clouds': 'test_feature_clouds_decode_or_are_refused',
}


def map_bytes(fuzz, office_frames, config: dict):
    """The map file the map-file test mutates: the office sequence of the test suite, tracked and saved."""
    with tempfile.TemporaryDirectory() as folder:
        camera, frames = office_frames(Path(folder), 40)
        system = System(camera, SlamConfig.from_dict(config))
        for frame in frames:
            system.process(frame)
        system.save_map(Path(folder) / 'office.map')
        return fuzz.MapBytes((Path(folder) / 'office.map').read_bytes())


def run(name: str, test, minutes: float, batch: int, extra: dict) -> int:
    """Batches of ``batch`` examples of ``test`` until ``minutes`` have passed; the number of failures."""
    calls, inner = [0], test.hypothesis.inner_test

    def counted(*args, **kwargs):
        calls[0] += 1
        return inner(*args, **kwargs)

    test.hypothesis.inner_test = counted        # hypothesis' documented hook for wrapping the test body
    start, batches, failures = time.monotonic(), 0, 0
    while time.monotonic() - start < 60 * minutes:
        try:
            test(**extra)
        except Exception as exc:  # a property failure: report it and go on fuzzing
            failures += 1
            print(f'  {name}: FAILURE {type(exc).__name__}: {str(exc)[:2000]}', flush=True)
        batches += 1
    print(f'{name}: {calls[0]} examples (shrinking included) in {batches} runs of up to {batch}, '
          f'{(time.monotonic() - start) / 60:.1f} min, {failures} failures', flush=True)
    return failures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--minutes', type=float, default=10.0, help='fuzzing time per parser')
    parser.add_argument('--batch', type=int, default=200, help='examples per hypothesis run')
    parser.add_argument('--only', nargs='*', choices=sorted(PARSERS), help='these parsers only')
    args = parser.parse_args()
    print(f'{platform.processor() or platform.machine()} ({len(os.sched_getaffinity(0))} cores), '
          f'{time.strftime("%Y-%m-%d %H:%M")}: {sys.executable} {" ".join(sys.argv)}', flush=True)
    os.environ['RAPNET_FUZZ_EXAMPLES'] = str(args.batch)     # read by the test module as it is imported
    sys.path.insert(0, str(TEST_DIR))
    fuzz = importlib.import_module('test_faults_fuzz')
    synthscene = importlib.import_module('synthscene')
    failures = 0
    for name, test_name in PARSERS.items():
        if args.only and name not in args.only:
            continue
        extra = {'map_bytes': map_bytes(fuzz, synthscene.office_frames, synthscene.OFFICE_CONFIG)} \
            if name == 'map files' else {}
        failures += run(name, getattr(fuzz, test_name), args.minutes, args.batch, extra)
    return 1 if failures else 0


if __name__ == '__main__':
    sys.exit(main())
