"""A short synthetic sequence for the front-end tests: scene ``office``, seed 2, 320x240, every challenge off, and
the front-end settings the tests track it with (``OFFICE_CONFIG``)."""
from pathlib import Path

from rapnet_loc.io.openloris import OpenLORISBag
from rapnet_loc.io.types import CameraInfo, RGBDFrame
from rapnet_loc.synth import Challenges, generate

OFFICE_CONFIG = {'features': {'name': 'orb', 'conf': {'max_keypoints': 600}}, 'tracking': {'close_depth': 2.5}}


def office_frames(out: Path, frames: int) -> tuple[CameraInfo, list[RGBDFrame]]:
    """Camera info and the RGB-D frames of a ``frames``-long sequence generated into ``out``."""
    summary = generate(out, scene='office', sequences=1, frames=frames, width=320, height=240, seed=2,
                       challenges=Challenges.none(), compression='none', progress=False)
    with OpenLORISBag(summary.bags[0]) as bag:
        return bag.camera_info(), list(bag.rgbd_frames())
