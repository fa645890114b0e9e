"""``rapnet-loc retrieve``: the keyframes of a saved map that its place recognizer ranks highest for each frame of
an RGB-D source, as an hloc-style pairs file.

Each line of ``--out`` is ``QUERY KEYFRAME SCORE``: ``--top-k`` lines per query frame, best first. Frames and
keyframes are named after their source frames: the file stem for a 7-Scenes folder (``frame-000123``), the stamp in
seconds for a bag (``1560000000.123456789``). The recognizer is the map's own unless ``--place-recognition`` (or
``--config``) names another, which is then built from the map's keyframes; the query frames' features come from
the map's extractor.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from rapnet_loc.cli.common import add_source_arguments
from rapnet_loc.io.atomic import check_writable
from rapnet_loc.io.source import open_source
from rapnet_loc.slam.run import open_map, retrieve, write_pairs


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser('retrieve', help='top-k keyframes of a map for each frame (hloc-style pairs file)',
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_source_arguments(p, with_map=True)
    p.add_argument('--top-k', type=int, default=10, metavar='K', help='keyframes per query frame (default: 10)')
    p.add_argument('--out', type=Path, required=True, metavar='PAIRS.txt', help='pairs file to write')
    return p


def run(args: argparse.Namespace) -> int:
    check_writable(args.out, '--out pairs file')
    map_file, config = open_map(args.map, args.config, args.features, args.place_recognition)
    with open_source(args.source, args.frames) as source:
        n = write_pairs(args.out, retrieve(map_file, config, source, args.top_k))
    print(f'{n} query frames, up to {args.top_k} keyframes each ({config.place_recognition}); pairs written to '
          f'{args.out}')
    return 0
