"""Kidnapped-robot trials, shared by ``rapnet-loc demo`` and ``benchmarks/bench_vpr_kidnap.py``.

One bag is mapped (``replay`` with ``map_out``); then the robot is "kidnapped": another bag of the same scene, from
``kidnap_at_s`` seconds on, is replayed in localization mode against that map, with no pose to start from, so the
front end must relocalize through its place recognizer. Both trajectories form one OpenLORIS result (the
alignment comes from the mapped sequence, as the official tool does) scored by the official metrics.

Outputs in ``out``: ``map/`` and ``kidnapped/`` (the two replays' outputs), ``map.map`` and
``result_openloris.txt``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rapnet_loc.eval.openloris import evaluate_file
from rapnet_loc.io.source import open_source
from rapnet_loc.io.trajectory import OpenLORISResult, read_openloris, write_openloris
from rapnet_loc.slam.config import SlamConfig
from rapnet_loc.slam.run import open_map, replay


@dataclass
class KidnapReport:
    """Outcome of a kidnap trial.

    Attributes:
        frames_to_correct: frames of the kidnapped replay up to and including the first pose within the official
            ATE and AOE thresholds (None: never).
        correct_rate, reloc_time_s: official correct rate and relocalization time of the kidnapped sequence (the
            seconds from the start of its ground truth, not of the replay, to its first pose).
        mapping_correct_rate: official correct rate of the mapped sequence.
        relocalized: relocalizations in the kidnapped replay; tracked_ratio: its share of frames with a pose.
    """

    frames_to_correct: int | None
    correct_rate: float
    reloc_time_s: float
    mapping_correct_rate: float
    relocalized: int
    tracked_ratio: float


def kidnap_trial(map_bag: Path, kidnap_bag: Path, gt_dir: Path, config: SlamConfig, out: Path,
                 kidnap_at_s: float = 0.0) -> KidnapReport:
    """Map ``map_bag`` with ``config``, then localize ``kidnap_bag`` from ``kidnap_at_s`` seconds on against that
    map (see the module doc); ``gt_dir`` holds the scene's OpenLORIS ground truth."""
    with open_source(map_bag) as source:
        replay(source, config, out / 'map', map_out=out / 'map.map')
    map_file, localize_config = open_map(out / 'map.map', place_recognition=config.place_recognition)
    with open_source(kidnap_bag, (kidnap_at_s, None)) as source:
        report = replay(source, localize_config, out / 'kidnapped', map_file=map_file)
    mapped, kidnapped = (read_openloris(out / name / 'trajectory_openloris.txt') for name in ('map', 'kidnapped'))
    write_openloris(out / 'result_openloris.txt',
                    OpenLORISResult(info=mapped.info, sequences={**mapped.sequences, **kidnapped.sequences}))
    ev = evaluate_file(out / 'result_openloris.txt', gt_dir)
    first, second = (ev.sequences[seq] for seq in (min(ev.sequences), max(ev.sequences)))
    frames = None
    if second.correct.any():
        stamps_s = np.genfromtxt(out / 'kidnapped' / 'status.csv', delimiter=',', names=True, usecols=0)['stamp']
        frames = int(np.searchsorted(np.atleast_1d(stamps_s), second.stamps_s[np.argmax(second.correct)] - 1e-6)) + 1
    return KidnapReport(frames, second.correct_rate, second.reloc_time, first.correct_rate, report['relocalized'],
                        report['tracked_ratio'])
