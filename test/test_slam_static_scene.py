"""Acceptance: the front end on a static synthetic OpenLORIS-style sequence tracks every frame within 2 cm.

Scene ``home`` with people (the only dynamic objects) off; repetitive textures, featureless walls, illumination
changes and motion blur stay on. The replay of ``rapnet-loc replay`` (``rapnet_loc.slam.run.replay``) writes
``report.json`` with the ATE of the camera poses against the ground truth from the bag's ``/gt`` and ``/tf_static``.
"""
import json

from rapnet_loc.io.source import open_source
from rapnet_loc.slam.config import SlamConfig
from rapnet_loc.slam.run import replay
from rapnet_loc.synth import Challenges, generate

STATIC = Challenges(people=0, repetitive=True, featureless=True, illumination=True, moved_furniture=False,
                    motion_blur=True)


def test_static_sequence_is_fully_tracked_within_2_cm(tmp_path):
    summary = generate(tmp_path / 'data', scene='home', sequences=1, frames=240, width=640, height=480, seed=0,
                       challenges=STATIC, compression='none', progress=False)
    with open_source(summary.bags[0]) as source:
        replay(source, SlamConfig(), tmp_path / 'out')
    report = json.loads((tmp_path / 'out' / 'report.json').read_text())
    assert report['frames'] == 240 and report['tracked'] == 240
    assert report['ate']['matches'] == 240 and report['ate']['ate_rmse'] <= 0.02
