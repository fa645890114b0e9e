"""Arguments that the subcommands over an RGB-D source share (``replay``, ``build-map``, ``localize``,
``retrieve``)."""
from __future__ import annotations

import argparse
from pathlib import Path


def add_source_arguments(p: argparse.ArgumentParser, with_map: bool = False) -> None:
    """Positional ``MAP`` (with ``with_map``) and ``SOURCE``, then the options every such command takes: extractor,
    configuration, place recognizer and frame range."""
    if with_map:
        p.add_argument('map', type=Path, metavar='MAP', help='map file (rapnet-loc build-map or replay --map-out)')
    p.add_argument('source', type=Path, metavar='SOURCE',
                   help='OpenLORIS-style bag (ROS 1 file or ROS 2 folder) or 7-Scenes-style frame folder')
    p.add_argument('--features', help='feature extractor (default: the configuration\'s or the map\'s, orb); one '
                                      'other than the configuration\'s runs with its default options')
    p.add_argument('--config', type=Path, help='YAML configuration (see rapnet_loc.slam.config)')
    p.add_argument('--place-recognition', metavar='NAME',
                   help='place recognizer (rapnet_loc.vpr registry; default: the configuration\'s or the map\'s, bow)')
    p.add_argument('--frames', metavar='FIRST:LAST',
                   help='inclusive range: 7-Scenes file numbers, or seconds from the start of a bag; either side may '
                        'be empty')
