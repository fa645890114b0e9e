"""Arguments that subcommands share: those over an RGB-D source (``replay``, ``build-map``, ``localize``,
``retrieve``) and the flags of a training run and its configuration dataclass (``train-rapnet``, ``train-netvlad``,
``train-vsnet``)."""
from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

POSITIONAL_FIELDS = ('data', 'out')     # a training configuration's data folders and output folder


def add_source_arguments(p: argparse.ArgumentParser, with_map: bool = False, several: bool = False) -> None:
    """Positional ``MAP`` (with ``with_map``) and ``SOURCE`` (one or more with ``several``: a list), then the
    options every such command takes: extractor, configuration, place recognizer and frame range."""
    if with_map:
        p.add_argument('map', type=Path, metavar='MAP', help='map file (rapnet-loc build-map or replay --map-out)')
    p.add_argument('source', type=Path, metavar='SOURCE', nargs='+' if several else None,
                   help='OpenLORIS-style bag (ROS 1 file or ROS 2 folder) or 7-Scenes-style frame folder' +
                        ('; several: the sequences of one scene, in order, through one front end' if several else ''))
    p.add_argument('--features', help='feature extractor (default: the configuration\'s or the map\'s, orb); one '
                                      'other than the configuration\'s runs with its default options')
    p.add_argument('--config', type=Path, help='YAML configuration (see rapnet_loc.slam.config)')
    p.add_argument('--place-recognition', metavar='NAME',
                   help='place recognizer (rapnet_loc.vpr registry; default: the configuration\'s or the map\'s, bow)')
    p.add_argument('--frames', metavar='FIRST:LAST',
                   help='inclusive range: 7-Scenes file numbers, or seconds from the start of a bag; either side may '
                        'be empty')


def add_config_flags(p: argparse.ArgumentParser, config: type, helps: dict[str, str], types: dict[str, type],
                     lists: dict[str, type] | None = None, choices: dict[str, tuple] | None = None) -> None:
    """One ``--flag-name`` per field of the dataclass ``config`` but ``POSITIONAL_FIELDS``: its default, the
    type of its default (or ``types``), ``store_true`` for booleans, several values for ``lists`` (field -> item
    type), and ``choices``."""
    lists, choices = lists or {}, choices or {}
    for field in dataclasses.fields(config):
        if field.name in POSITIONAL_FIELDS:
            continue
        kwargs: dict[str, Any] = {'help': helps[field.name]}
        if field.name in lists:
            kwargs.update(nargs='*', default=[], type=lists[field.name])
        elif isinstance(field.default, bool):
            kwargs.update(action='store_true')
        else:
            kwargs.update(default=field.default, type=types.get(field.name, type(field.default)))
        if field.name in choices:
            kwargs['choices'] = choices[field.name]
        p.add_argument(f'--{field.name.replace("_", "-")}', **kwargs)


def add_run_flags(p: argparse.ArgumentParser, state_file: str) -> None:
    """``--resume`` (continue from the training state ``state_file``, as the help names it) and ``--no-progress``,
    the flags every trainer takes beside its configuration's."""
    p.add_argument('--resume', action='store_true', help=f'continue from {state_file} when present')
    p.add_argument('--no-progress', action='store_true', help='hide the progress bars')


def config_from_args(config: type, args: argparse.Namespace) -> Any:
    """The dataclass ``config`` with each field taken from ``args``."""
    return config(**{f.name: getattr(args, f.name) for f in dataclasses.fields(config)})
